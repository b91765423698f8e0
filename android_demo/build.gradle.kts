// Top-level build file: plugins are declared here (versions in gradle/libs.versions.toml), applied per module.
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.android) apply false
}
