package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;

/**
 * The services' Java AOT caches (JDK 25: JEP 483 ahead-of-time class loading and linking, JEP 514's one-step
 * {@code -XX:AOTCacheOutput}, JEP 515's method profiles), made by the launcher on first use and kept under
 * {@code <cache-root>/<jar>-<key>/}: the jar extracted as Spring Boot's {@code -Djarmode=tools extract} lays it out
 * (a thin {@code app.jar} plus {@code lib/}: the JVM archives only classes of the class path's plain jars, not
 * those a fat jar's nested-jar class loader defines) and {@code app.aot}, recorded by one training run of the
 * service with {@code -Dspring.context.exit=onRefresh} (every bean created, then exit: Spring Boot's "AOT cache"
 * recipe). The kernel warm-up starts only once a service is ready (MatMul.warmUp), so the run records no kernel
 * profiles: the kernels' code comes from C2 at run time in any case.
 *
 * <p>The key is a SHA-256 over the jar's table of contents (each entry's CRC-32 and sizes, {@link #key}) and the
 * JDK's version and home: a rebuilt jar or another JDK gets a new folder and never a stale cache; {@link #pruneStale}
 * deletes earlier builds' folders once nothing can need them. A cache the JVM cannot use anyway (corrupt, truncated,
 * other class path) only costs a warning in the service's log: {@code -XX:AOTCache} defaults to {@code -XX:AOTMode=auto}, which starts
 * without it (AotCacheE2eTest checks that). A training run that fails leaves no {@code app.aot}; the service then
 * starts from its jar as without a cache. Two launchers (parallel tests) agree through a file lock per key.
 *
 * <p>{@code MOEMESH_AOT_CACHE} in the caller's environment: {@code off} starts from the plain jars; any other value
 * is the cache root; unset, {@code <repository>/.moemesh/aot-cache} (not the state folder: every mesh, each test's
 * included, shares the caches of the same jars).
 */
public final class AotCache {
    /** The caller's setting: {@code off}, or the cache root. */
    public static final String ENV = "MOEMESH_AOT_CACHE";
    static final String ARCHIVE = "app.aot";
    static final String EXTRACTED = "extracted";
    static final String TRAINING_LOG = "training.log";
    /** One monitor per key folder: FileLock is per JVM, two threads of one JVM must not both take it. */
    private static final Map<Path, Object> LOCAL_LOCKS = new ConcurrentHashMap<>();

    private final Path root;
    /** The folders {@link #apply} started services from: the current builds, which {@link #pruneStale} keeps. */
    private final Set<Path> used = ConcurrentHashMap.newKeySet();

    private AotCache(Path root) {
        this.root = root;
    }

    /** The cache the caller's environment chooses; empty when it says {@code off}. */
    public static Optional<AotCache> of(MeshHome home, Map<String, String> callerEnv) {
        String v = callerEnv.getOrDefault(ENV, "").strip();
        if (v.equalsIgnoreCase("off")) {
            return Optional.empty();
        }
        return Optional.of(new AotCache(v.isEmpty() ? home.root().resolve(".moemesh").resolve("aot-cache")
                : Path.of(v).toAbsolutePath().normalize()));
    }

    /** A cache under {@code root} (tests). */
    static AotCache at(Path root) {
        return new AotCache(root.toAbsolutePath().normalize());
    }

    public Path root() {
        return root;
    }

    /** Whether {@code jar}'s cache is made (a start from it will not train first). */
    public boolean ready(Path jar) {
        return springBootJar(jar) && Files.isRegularFile(folder(jar).resolve(ARCHIVE));
    }

    /** The folder of {@code jar}'s cache: its file name and the first 16 hex digits of its {@link #key}. */
    public Path folder(Path jar) {
        String name = jar.getFileName().toString().replaceFirst("\\.jar$", "");
        return root.resolve(name + "-" + key(jar));
    }

    /**
     * SHA-256 over the jar's table of contents (every entry's name, method, sizes and CRC-32, in the order of its
     * central directory) and length, then the JDK's version and home (an AOT cache is only valid for its JDK). A
     * rebuilt jar with any other byte in any entry gets another key (but for a CRC-32 collision in an entry of the
     * same sizes, odds of 2^-32). Reading the central directory instead of the whole file: hashing the four
     * service jars' 300 MB cost every `up` 0.3 CPU seconds of its launcher with C2, 2.3 with C1 alone (as the
     * launcher now runs), before any service started (docs/performance.md, Cold start). A file that is not a zip
     * is hashed whole.
     */
    static String key(Path jar) {
        MessageDigest sha = sha256();
        try {
            sha.update(("moemesh-aot-key-v2|" + Files.size(jar) + "|").getBytes(StandardCharsets.UTF_8));
            try (ZipFile zip = new ZipFile(jar.toFile())) {
                ByteBuffer entry = ByteBuffer.allocate(4 * Long.BYTES);
                for (Enumeration<? extends ZipEntry> e = zip.entries(); e.hasMoreElements(); ) {
                    ZipEntry z = e.nextElement();
                    sha.update(z.getName().getBytes(StandardCharsets.UTF_8));
                    entry.clear().putLong(z.getMethod()).putLong(z.getSize()).putLong(z.getCompressedSize())
                            .putLong(z.getCrc());
                    sha.update(entry.flip());
                }
            } catch (ZipException notAZip) {
                sha.update("whole|".getBytes(StandardCharsets.UTF_8));
                try (InputStream in = Files.newInputStream(jar)) {
                    byte[] buf = new byte[1 << 20];
                    for (int n; (n = in.read(buf)) > 0; ) {
                        sha.update(buf, 0, n);
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(jar + ": cannot read it to key its AOT cache", e);
        }
        sha.update((Runtime.version() + "|" + System.getProperty("java.home")).getBytes(StandardCharsets.UTF_8));
        return HexFormat.of().formatHex(sha.digest(), 0, 8);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every JDK has SHA-256", e);
        }
    }

    /**
     * The services with their commands switched to their jar's cache ({@code -XX:AOTCache=... -jar
     * <extracted>/app.jar}), training the caches that are missing first: one run per distinct jar, all at once
     * (the experts share one). A service whose cache could not be made keeps its command; the reason is logged.
     */
    public List<MeshState.Service> apply(List<MeshState.Service> services, Duration timeout, PrintWriter log) {
        Map<Path, MeshState.Service> firstByJar = new LinkedHashMap<>();
        for (MeshState.Service s : services) {
            jarOf(s.command()).filter(AotCache::springBootJar).ifPresent(j -> firstByJar.putIfAbsent(j, s));
        }
        Map<Path, CompletableFuture<Optional<Path>>> ready = new LinkedHashMap<>();
        firstByJar.forEach((jar, s) -> ready.put(jar, CompletableFuture.supplyAsync(() -> ensure(jar, s, timeout, log))));
        List<MeshState.Service> out = new ArrayList<>();
        for (MeshState.Service s : services) {
            Optional<Path> jar = jarOf(s.command());
            Optional<Path> folder = jar.filter(ready::containsKey).flatMap(j -> ready.get(j).join());
            out.add(folder.isPresent() ? s.withCommand(cachedCommand(s.command(), jar.get(), folder.get())) : s);
        }
        return out;
    }

    /**
     * Deletes the caches of earlier builds of the jars {@link #apply} used that nothing can still need
     * ({@link StaleAotCaches} says when), saying how many; a failure only costs a line in {@code log}.
     *
     * @param stateDir the launching mesh's state directory: the folders its mesh.json names stay
     */
    public void pruneStale(PrintWriter log, Path stateDir) {
        if (used.isEmpty() || !Files.isDirectory(root)) {
            return;
        }
        try {
            List<Path> deleted = StaleAotCaches.prune(root, Set.copyOf(used), Instant.now(),
                    StaleAotCaches.inUse(stateDir));
            if (!deleted.isEmpty()) {
                say(log, "moemesh up: deleted %d AOT cache(s) of earlier builds from %s", deleted.size(), root);
            }
        } catch (RuntimeException e) {
            say(log, "moemesh up: could not prune the AOT caches of earlier builds in %s (%s)", root, e.getMessage());
        }
    }

    /** The folder of {@code jar}'s ready cache, training it first when missing; empty when that failed. */
    Optional<Path> ensure(Path jar, MeshState.Service service, Duration timeout, PrintWriter log) {
        Path folder = folder(jar);
        used.add(folder);
        if (Files.isRegularFile(folder.resolve(ARCHIVE))) {
            StaleAotCaches.touch(root, folder);
            return Optional.of(folder);
        }
        synchronized (LOCAL_LOCKS.computeIfAbsent(folder, f -> new Object())) {
            try {
                Files.createDirectories(root);
                try (FileChannel lockFile = FileChannel.open(lockFile(root, folder),
                        StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                     FileLock ignored = lockFile.lock()) {
                    if (Files.isRegularFile(folder.resolve(ARCHIVE))) {
                        return Optional.of(folder); // another launcher made it while this one waited
                    }
                    return train(jar, folder, service, timeout, log);
                }
            } catch (IOException | RuntimeException e) {
                say(log, "moemesh up: no AOT cache for %s (%s); it starts from its jar", jar.getFileName(), e.getMessage());
                return Optional.empty();
            }
        }
    }

    private Optional<Path> train(Path jar, Path folder, MeshState.Service service, Duration timeout, PrintWriter log)
            throws IOException {
        Instant t0 = Instant.now();
        say(log, "moemesh up: building the AOT cache of %s in %s (once per build of the jar)", jar.getFileName(), folder);
        deleteTree(folder); // what a killed training run left
        Path extracted = folder.resolve(EXTRACTED);
        Files.createDirectories(folder);
        Path trainingLog = folder.resolve(TRAINING_LOG);
        String java = service.command().getFirst();
        run(List.of(java, "-Djarmode=tools", "-jar", jar.toString(), "extract", "--destination", extracted.toString()),
                Map.of(), trainingLog, timeout);
        Path thin = extracted.resolve(jar.getFileName());
        if (!Files.isRegularFile(thin)) {
            throw new IOException("extracting it made no " + thin);
        }
        Path partial = folder.resolve(ARCHIVE + ".partial");
        List<String> cmd = new ArrayList<>();
        List<String> c = service.command();
        int jarAt = c.indexOf("-jar");
        cmd.addAll(c.subList(0, jarAt));
        cmd.addAll(List.of("-XX:AOTCacheOutput=" + partial, "-Dspring.context.exit=onRefresh", "-jar", thin.toString()));
        int exit = run(cmd, trainingEnvironment(service.environment(), folder.resolve("scratch")), trainingLog, timeout);
        deleteTree(folder.resolve("scratch"));
        if (exit != 0 || !Files.isRegularFile(partial)) {
            throw new IOException("its training run exited with " + exit + ", see " + trainingLog);
        }
        // Published last and atomically: whoever sees app.aot sees a finished cache.
        Files.move(partial, folder.resolve(ARCHIVE), StandardCopyOption.ATOMIC_MOVE);
        say(log, "moemesh up: AOT cache of %s ready (%.1f s)", jar.getFileName(),
                Duration.between(t0, Instant.now()).toMillis() / 1000.0);
        return Optional.of(folder);
    }

    /**
     * The service's environment for its training run: every port 0 (the run binds nothing, but a fixed port must
     * not be claimed twice if it did), and the folders a service writes (the router's state, the kvcache-service's
     * SSD tier) moved to a scratch folder, so training never touches the mesh's data.
     */
    static Map<String, String> trainingEnvironment(Map<String, String> env, Path scratch) {
        Map<String, String> t = new LinkedHashMap<>(env);
        t.replaceAll((k, v) -> k.endsWith("_PORT") ? "0" : v);
        for (String k : List.of("MOEMESH_ROUTER_STATE_DIR", "MOEMESH_KVCACHE_SSD_DIR")) {
            if (t.containsKey(k)) {
                t.put(k, scratch.resolve(k.toLowerCase(java.util.Locale.ROOT)).toString());
            }
        }
        return t;
    }

    /** {@code command} with {@code -jar <jar>} replaced by the cache and the extracted jar. */
    static List<String> cachedCommand(List<String> command, Path jar, Path folder) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < command.size(); i++) {
            if (command.get(i).equals("-jar") && i + 1 < command.size() && Path.of(command.get(i + 1)).equals(jar)) {
                out.add("-XX:AOTCache=" + folder.resolve(ARCHIVE));
                out.add("-jar");
                out.add(folder.resolve(EXTRACTED).resolve(jar.getFileName()).toString());
                i++;
            } else {
                out.add(command.get(i));
            }
        }
        return out;
    }

    /**
     * Whether {@code jar} is an executable Spring Boot jar (its manifest names a {@code Start-Class}): only those can
     * be extracted and trained as above; any other jar starts as it is.
     */
    static boolean springBootJar(Path jar) {
        try (JarFile j = new JarFile(jar.toFile())) {
            Manifest m = j.getManifest();
            return m != null && m.getMainAttributes().getValue("Start-Class") != null;
        } catch (IOException e) {
            return false;
        }
    }

    /** The jar after {@code -jar}, if the command has one. */
    static Optional<Path> jarOf(List<String> command) {
        int i = command.indexOf("-jar");
        return i >= 0 && i + 1 < command.size() ? Optional.of(Path.of(command.get(i + 1))) : Optional.empty();
    }

    private static int run(List<String> command, Map<String, String> env, Path logFile, Duration timeout)
            throws IOException {
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()));
        ServiceProcess.replaceEnvironment(pb, env);
        Process p = pb.start();
        p.getOutputStream().close();
        try {
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                // with the JVM that assembles the cache (JEP 514 starts it as a child at exit)
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                throw new IOException("it did not finish in " + timeout.toSeconds() + " s, see " + logFile);
            }
            return p.exitValue();
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }

    /** {@code <root>/<folder>.lock}: the key's lock (training, pruning) and, by its time, its last use. */
    static Path lockFile(Path root, Path folder) {
        return root.resolve(folder.getFileName() + ".lock");
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    private static void say(PrintWriter log, String format, Object... args) {
        synchronized (log) {
            log.printf(format + "%n", args);
            log.flush();
        }
    }
}
