// The app's pure-Java core: no android.* imports, so its tests run on any JVM. `make test` in the kit
// compiles and runs the same sources and tests with the system JDK and junit4.
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_11
    targetCompatibility = JavaVersion.VERSION_11
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // Golden vectors written by `python -m edge.golden` (committed under src/test/resources/golden).
    systemProperty("golden.dir", file("src/test/resources/golden").absolutePath)
    testLogging { events("passed", "skipped", "failed") }
}
