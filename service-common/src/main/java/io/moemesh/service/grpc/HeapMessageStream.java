package io.moemesh.service.grpc;

import io.grpc.KnownLength;
import java.io.ByteArrayInputStream;

/**
 * A received message held whole in a heap array, as a stream that says how many of its bytes are left
 * ({@link KnownLength}: {@code available()} is exact). The hand-written parsers ({@link WireReader}) check every
 * length prefix against that before they allocate for it; gRPC's own stream of an uncompressed message is
 * KnownLength already, a compressed one (an inflating stream) is copied into one of these first.
 */
public final class HeapMessageStream extends ByteArrayInputStream implements KnownLength {
    public HeapMessageStream(byte[] message) {
        super(message);
    }
}
