package io.moemesh.service.testing;

import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** gRPC methods whose messages are plain UTF-8 strings: test services without protobuf. */
public final class TextRpc {
    /** A UTF-8 string as the whole message. */
    public static final MethodDescriptor.Marshaller<String> TEXT = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(String value) {
            return new ByteArrayInputStream(value.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public String parse(InputStream stream) {
            try {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    };

    private TextRpc() {
    }

    /** The method {@code service/name} of the given type, strings both ways. */
    public static MethodDescriptor<String, String> method(MethodDescriptor.MethodType type, String service, String name) {
        return MethodDescriptor.<String, String>newBuilder().setType(type)
                .setFullMethodName(MethodDescriptor.generateFullMethodName(service, name))
                .setRequestMarshaller(TEXT).setResponseMarshaller(TEXT).build();
    }
}
