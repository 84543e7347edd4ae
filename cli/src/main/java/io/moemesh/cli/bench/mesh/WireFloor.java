package io.moemesh.cli.bench.mesh;

import io.moemesh.proto.common.v1.DType;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ProtocolFamily;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.crypto.Cipher;
import javax.crypto.KeyGenerator;
import javax.crypto.SecretKey;
import javax.crypto.spec.GCMParameterSpec;

/**
 * What a hop's payload costs this machine below gRPC, for the floors printed after the hop table (issue 13): the
 * kernel's part, a blocking socket round trip of the payload each way between two threads of this JVM (what a
 * C ping-pong of two processes measures too), and the cipher's part of mutual TLS, AES-128-GCM (TLS 1.3's suite
 * on AES-NI hardware) over the payload in TLS's 16 KiB records. Neither depends on our code: where the empty round
 * trip plus these exceeds a row's goal, no implementation on this machine meets it.
 */
final class WireFloor {
    /** TLS's largest record plaintext (RFC 8446 §5.1). */
    static final int TLS_RECORD = 16 * 1024;
    private static final int GCM_TAG_BITS = 128;

    private WireFloor() {
    }

    /** A socket's transport for {@link #socketRoundTrip}. */
    enum Socket {
        TCP, UNIX
    }

    /**
     * Round trips of {@code bytes} each way over a fresh connection of {@code socket}'s kind: the caller writes them,
     * an echo thread reads them all and writes them back (blocking I/O, direct buffers, TCP_NODELAY on TCP).
     */
    static Percentiles socketRoundTrip(Socket socket, int bytes, int warmup, int iterations) {
        Path dir = null;
        try {
            ProtocolFamily family;
            SocketAddress bindTo;
            if (socket == Socket.TCP) {
                family = StandardProtocolFamily.INET;
                bindTo = new InetSocketAddress(InetAddress.getLoopbackAddress(), 0);
            } else {
                family = StandardProtocolFamily.UNIX;
                dir = Files.createTempDirectory("mm-floor");
                bindTo = UnixDomainSocketAddress.of(dir.resolve("s"));
            }
            try (ServerSocketChannel server = ServerSocketChannel.open(family)) {
                server.bind(bindTo);
                int rounds = warmup + iterations;
                Thread echo = Thread.ofPlatform().name("wire-floor-echo").daemon().start(() -> echo(server, bytes, rounds));
                long[] samples = new long[iterations];
                try (SocketChannel c = SocketChannel.open(family)) {
                    c.connect(server.getLocalAddress());
                    if (socket == Socket.TCP) {
                        c.setOption(StandardSocketOptions.TCP_NODELAY, true);
                    }
                    ByteBuffer b = ByteBuffer.allocateDirect(bytes);
                    for (int i = 0; i < rounds; i++) {
                        long t0 = System.nanoTime();
                        b.clear();
                        writeFully(c, b);
                        b.clear();
                        readFully(c, b);
                        long t = System.nanoTime() - t0;
                        if (i >= warmup) {
                            samples[i - warmup] = t;
                        }
                    }
                }
                echo.join();
                return Percentiles.of(samples, iterations);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("measuring a " + socket + " round trip of " + bytes + " bytes failed", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } finally {
            if (dir != null) {
                try {
                    Files.deleteIfExists(dir.resolve("s"));
                    Files.deleteIfExists(dir);
                } catch (IOException ignored) {
                    // a temporary directory of a few bytes
                }
            }
        }
    }

    private static void echo(ServerSocketChannel server, int bytes, int rounds) {
        try (SocketChannel s = server.accept()) {
            if (s.getLocalAddress() instanceof InetSocketAddress) {
                s.setOption(StandardSocketOptions.TCP_NODELAY, true);
            }
            ByteBuffer b = ByteBuffer.allocateDirect(bytes);
            for (int i = 0; i < rounds; i++) {
                b.clear();
                readFully(s, b);
                b.flip();
                writeFully(s, b);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void readFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw new IOException("the echo closed the connection");
            }
        }
    }

    private static void writeFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /**
     * AES-128-GCM encryption of {@code bytes} in 16 KiB records, as a TLS 1.3 sender seals them (the JDK's
     * intrinsified cipher; the records' framing and the decryption at the receiver not counted).
     */
    static Percentiles sealRecords(int bytes, int warmup, int iterations) {
        try {
            KeyGenerator kg = KeyGenerator.getInstance("AES");
            kg.init(128);
            SecretKey key = kg.generateKey();
            Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
            byte[] plain = new byte[bytes];
            new SecureRandom().nextBytes(plain);
            byte[] sealed = new byte[TLS_RECORD + GCM_TAG_BITS / 8];
            byte[] iv = new byte[12];
            long nonce = 0;
            long[] samples = new long[iterations];
            for (int i = 0; i < warmup + iterations; i++) {
                long t0 = System.nanoTime();
                for (int at = 0; at < bytes; at += TLS_RECORD) {
                    // A fresh nonce per record, as TLS derives one from the record's sequence number (RFC 8446 §5.3).
                    nonce++;
                    for (int k = 0; k < 8; k++) {
                        iv[4 + k] = (byte) (nonce >>> (8 * k));
                    }
                    cipher.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(GCM_TAG_BITS, iv));
                    cipher.doFinal(plain, at, Math.min(TLS_RECORD, bytes - at), sealed, 0);
                }
                long t = System.nanoTime() - t0;
                if (i >= warmup) {
                    samples[i - warmup] = t;
                }
            }
            return Percentiles.of(samples, iterations);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-128-GCM is not available: " + e.getMessage(), e);
        }
    }

    /** A hop row and the transport it was measured over. */
    record Measured(HopBenchmark.Row row, String transport) {
    }

    /**
     * The floors of {@code rows}' payloads, measured now (after every row, so the rows ran alone), as a table: the
     * row's empty round trip plus the kernel's and the cipher's part is the least a hop over that transport costs on
     * this machine; its ratio to the row's goal says whether any implementation could meet it.
     */
    static void print(PrintWriter out, List<Measured> rows, int warmup, int iterations) {
        Map<String, Long> kernel = new HashMap<>();
        Map<Long, Long> seal = new HashMap<>();
        Map<Socket, Long> oneByte = new HashMap<>();
        out.println();
        out.println("Floors of the same payloads below gRPC, measured after the rows: kernel = a blocking socket round "
                + "trip of the payload each way between two threads (TCP on loopback, or a Unix domain socket) minus "
                + "the same with 1 byte, p50; seal = AES-128-GCM encryption of the payload in 16 KiB TLS records, "
                + "both directions (the JDK's cipher; decryption not counted), p50; bound = the row's empty RT + "
                + "kernel + seal, the least a hop over that transport costs here whatever marshals it (unix: the "
                + "tensors go through shared memory, not the socket).");
        out.println();
        out.println("| transport | hidden | tokens | wire | payload KiB | hop p50 µs | empty RT p50 µs | kernel p50 µs "
                + "| seal p50 µs | bound µs | goal µs | bound ÷ goal |");
        out.println("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (Measured m : rows) {
            HopBenchmark.Row r = m.row();
            Socket socket = switch (m.transport()) {
                case "plaintext", "mtls" -> Socket.TCP;
                case "unix-inline", "unix-tls" -> Socket.UNIX;
                default -> null; // unix: the shared-memory arena
            };
            int bytes = Math.toIntExact(r.payloadBytes());
            long k = 0;
            if (socket != null) {
                long base = oneByte.computeIfAbsent(socket, s -> socketRoundTrip(s, 1, warmup, iterations).p50());
                k = Math.max(0, kernel.computeIfAbsent(socket + "/" + bytes,
                        x -> socketRoundTrip(socket, bytes, warmup, iterations).p50()) - base);
            }
            long c = m.transport().endsWith("tls")
                    ? 2 * seal.computeIfAbsent(r.payloadBytes(), x -> sealRecords(bytes, warmup, iterations).p50()) : 0;
            long bound = r.empty().p50() + k + c;
            out.printf(Locale.ROOT, "| %s | %d | %d | %s | %.1f | %s | %s | %s | %s | %s | %s | %.2f |%n", m.transport(),
                    r.hidden(), r.tokens(), r.wire() == DType.DTYPE_BF16 ? "bf16" : "f32", r.payloadBytes() / 1024.0,
                    Percentiles.micros(r.hop().p50()), Percentiles.micros(r.empty().p50()),
                    socket == null ? "—" : Percentiles.micros(k), c == 0 ? "—" : Percentiles.micros(c),
                    Percentiles.micros(bound), Percentiles.micros(r.goal()), (double) bound / r.goal());
            out.flush();
        }
    }
}
