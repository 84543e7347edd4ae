package io.moemesh.service.testing;

import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.Tuple;

/**
 * Requests as the bytes a client puts on the wire, for tests that send what no generated stub would: a method
 * descriptor that takes and returns raw bytes, and jqwik arbitraries that damage valid messages the way a broken
 * or hostile client does. Shared by the fuzz and bad-input tests of every service (service-common's test jar).
 */
public final class RawMessages {
    /** Bytes in, bytes out: the message is whatever the test built. */
    public static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    private RawMessages() {
    }

    /** The same method (name, type) with raw-bytes requests and responses. */
    public static <Q, R> MethodDescriptor<byte[], byte[]> raw(MethodDescriptor<Q, R> m) {
        return m.toBuilder(BYTES, BYTES).build();
    }

    /**
     * The message as built (half the time), or its serialised bytes damaged: a byte overwritten, cut short, bytes
     * spliced in, a string byte made a lone UTF-8 continuation byte (proto3 strings must be valid UTF-8), or noise.
     */
    public static Arbitrary<byte[]> mutated(Arbitrary<byte[]> valid) {
        Arbitrary<byte[]> flipped = Combinators.combine(valid, Arbitraries.doubles().between(0, 1),
                Arbitraries.integers().between(0, 255)).as((b, at, v) -> {
                    byte[] c = b.clone();
                    if (c.length > 0) {
                        c[Math.min(c.length - 1, (int) (c.length * at))] = (byte) (int) v;
                    }
                    return c;
                });
        Arbitrary<byte[]> truncated = Combinators.combine(valid, Arbitraries.doubles().between(0, 1))
                .as((b, f) -> Arrays.copyOf(b, (int) (b.length * f)));
        Arbitrary<byte[]> inserted = Combinators.combine(valid, Arbitraries.doubles().between(0, 1),
                Arbitraries.bytes().array(byte[].class).ofMinSize(1).ofMaxSize(6)).as((b, f, ins) -> {
                    int at = (int) (b.length * f);
                    byte[] c = new byte[b.length + ins.length];
                    System.arraycopy(b, 0, c, 0, at);
                    System.arraycopy(ins, 0, c, at, ins.length);
                    System.arraycopy(b, at, c, at + ins.length, b.length - at);
                    return c;
                });
        Arbitrary<byte[]> invalidUtf8 = valid.map(b -> {
            byte[] c = b.clone();
            for (int i = 0; i < c.length; i++) {
                if (c[i] >= 'a' && c[i] <= 'z') {
                    c[i] = (byte) 0x80;
                    break;
                }
            }
            return c;
        });
        Arbitrary<byte[]> noise = Arbitraries.bytes().array(byte[].class).ofMaxSize(48);
        return Arbitraries.frequencyOf(Tuple.of(8, valid), Tuple.of(3, flipped), Tuple.of(2, truncated),
                Tuple.of(2, inserted), Tuple.of(2, invalidUtf8), Tuple.of(1, noise));
    }
}
