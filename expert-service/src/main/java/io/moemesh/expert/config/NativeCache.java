package io.moemesh.expert.config;

import java.nio.file.Path;

/**
 * Native libraries (JavaCPP / OpenBLAS, if the kernels use them) unpack into a cache directory; by default
 * JavaCPP picks ~/.javacpp, which a read-only root filesystem does not have. Pointing it at a configured,
 * writable directory before any kernel class loads keeps that working. An explicit -D wins.
 */
final class NativeCache {
    static final String JAVACPP_CACHE = "org.bytedeco.javacpp.cachedir";

    private NativeCache() {
    }

    static void configure(Path dir) {
        if (System.getProperty(JAVACPP_CACHE) == null) {
            System.setProperty(JAVACPP_CACHE, dir.toAbsolutePath().toString());
        }
    }
}
