plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "org.regnetykit.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.regnetykit.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_11
        targetCompatibility = JavaVersion.VERSION_11
    }
    kotlinOptions {
        jvmTarget = "11"
    }
    androidResources {
        noCompress += "tflite"  // the interpreter maps the model straight from the APK
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.camerax.core)
    implementation(libs.camerax.camera2)
    implementation(libs.camerax.lifecycle)
    implementation(libs.camerax.view)
    implementation(libs.activity.ktx)
    implementation(libs.appcompat)
    implementation(libs.material)
    implementation(libs.lifecycle.runtime.ktx)
    implementation(libs.exifinterface)
}

// The model is not in git: `python -m edge.android --model FILE` puts it here. Fail early and say so.
val modelAsset = file("src/main/assets/model.tflite")
tasks.named("preBuild") {
    doFirst {
        if (!modelAsset.isFile) {
            throw GradleException("no model at $modelAsset: run `python -m edge.android --model FILE` from the kit first")
        }
    }
}
