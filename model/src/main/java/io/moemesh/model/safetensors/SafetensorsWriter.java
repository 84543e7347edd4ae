package io.moemesh.model.safetensors;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.stream.LongStream;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Streams a safetensors file: an 8-byte little-endian header length N, N bytes of UTF-8 JSON header (padded with
 * spaces to a multiple of 8), then every tensor's raw little-endian bytes back to back in declaration order.
 *
 * <p>The caller declares every tensor (name, dtype, shape) up front, so the header and all offsets are known
 * before any data; then {@link TensorData#write} is called once per tensor, in order, and pushes exactly that
 * tensor's elements into a {@link TensorSink}. Data goes through one reusable direct buffer to a
 * {@link FileChannel}, so a multi-GB checkpoint never sits in memory. Floats are converted to the tensor's dtype on
 * the way: BF16 by round-to-nearest-even (as torch does), F16 via {@link Float#floatToFloat16}.
 *
 * <p>The file appears atomically: it is written as {@code <name>.partial} and renamed when complete, and the
 * partial file is deleted if anything fails.
 */
public final class SafetensorsWriter {

    /** One declared tensor. {@code shape} is row-major, outermost first ([out_features, in_features] for linear weights). */
    public record Tensor(String name, DType dtype, List<Long> shape) {
        public Tensor {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(dtype, "dtype");
            shape = List.copyOf(shape);
            if (name.isEmpty() || name.equals(METADATA_KEY)) {
                throw new IllegalArgumentException("invalid tensor name '" + name + "'");
            }
            for (long d : shape) {
                if (d < 0) {
                    throw new IllegalArgumentException("tensor " + name + ": negative dimension in shape " + shape);
                }
            }
            long elements = 1;
            for (long d : shape) {
                elements = Math.multiplyExact(elements, d);
            }
            Math.multiplyExact(elements, (long) dtype.bytes());
        }

        public static Tensor of(String name, DType dtype, long... shape) {
            return new Tensor(name, dtype, LongStream.of(shape).boxed().toList());
        }

        public long elements() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }

        public long byteSize() {
            return elements() * dtype.bytes();
        }
    }

    /** Receives the data of the tensor being written. Supplying more or fewer elements than its shape holds fails. */
    public interface TensorSink {
        /** Appends {@code length} values, converted to the tensor's dtype. */
        void putFloats(float[] values, int offset, int length) throws IOException;

        default void putFloats(float[] values) throws IOException {
            putFloats(values, 0, values.length);
        }

        /** Appends bytes already encoded in the tensor's dtype (little-endian); a whole number of elements. */
        void putBytes(ByteBuffer encoded) throws IOException;
    }

    /** Supplies one tensor's data; called once per declared tensor, in declaration order. */
    @FunctionalInterface
    public interface TensorData {
        void write(Tensor tensor, TensorSink sink) throws IOException;
    }

    public static final String METADATA_KEY = "__metadata__";
    private static final int BUFFER_BYTES = 8 << 20;
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private SafetensorsWriter() {
    }

    /** Writes {@code file} with metadata {@code {"format": "pt"}}. */
    public static void write(Path file, List<Tensor> tensors, TensorData data) throws IOException {
        write(file, tensors, Map.of(), data);
    }

    /**
     * Writes {@code file}: the header for {@code tensors} (with {@code metadata} merged over {@code {"format": "pt"}}),
     * then each tensor's data as {@code data} supplies it.
     */
    public static void write(Path file, List<Tensor> tensors, Map<String, String> metadata, TensorData data)
            throws IOException {
        byte[] header = header(tensors, metadata);
        Path partial = file.resolveSibling(file.getFileName() + ".partial");
        boolean done = false;
        try {
            try (FileChannel channel = FileChannel.open(partial, StandardOpenOption.CREATE,
                    StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
                ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
                Sink sink = new Sink(channel, buffer);
                sink.putHeader(header);
                for (Tensor tensor : tensors) {
                    sink.begin(tensor);
                    data.write(tensor, sink);
                    sink.end();
                }
                sink.flush();
                long expected = 8L + header.length + tensors.stream().mapToLong(Tensor::byteSize).sum();
                if (channel.size() != expected) {
                    throw new IOException(partial + ": wrote " + channel.size() + " bytes, expected " + expected);
                }
            }
            move(partial, file);
            done = true;
        } finally {
            if (!done) {
                Files.deleteIfExists(partial);
            }
        }
    }

    /** The header bytes (JSON padded with spaces to a multiple of 8), without the 8-byte length prefix. */
    public static byte[] header(List<Tensor> tensors, Map<String, String> metadata) {
        ObjectNode root = JSON.createObjectNode();
        ObjectNode meta = root.putObject(METADATA_KEY);
        Map<String, String> merged = new LinkedHashMap<>();
        merged.put("format", "pt");
        merged.putAll(metadata);
        merged.forEach(meta::put);
        Set<String> names = new HashSet<>();
        long offset = 0;
        for (Tensor tensor : tensors) {
            if (!names.add(tensor.name())) {
                throw new IllegalArgumentException("tensor " + tensor.name() + " declared twice");
            }
            ObjectNode entry = root.putObject(tensor.name());
            entry.put("dtype", tensor.dtype().safetensorsName());
            ArrayNode shape = entry.putArray("shape");
            tensor.shape().forEach(shape::add);
            long end = Math.addExact(offset, tensor.byteSize());
            entry.putArray("data_offsets").add(offset).add(end);
            offset = end;
        }
        byte[] json = JSON.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) & ~7;
        byte[] header = new byte[padded];
        System.arraycopy(json, 0, header, 0, json.length);
        Arrays.fill(header, json.length, padded, (byte) ' ');
        return header;
    }

    /** float32 to bfloat16 bits, rounding to nearest even as torch does; every NaN becomes the quiet NaN 0x7FC0. */
    public static short toBfloat16(float value) {
        if (Float.isNaN(value)) {
            return (short) 0x7FC0;
        }
        int bits = Float.floatToRawIntBits(value);
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** Converts into the shared direct buffer and drains it to the channel whenever it fills up. */
    private static final class Sink implements TensorSink {
        private final FileChannel channel;
        private final ByteBuffer buffer;
        private Tensor tensor;
        private long remaining;

        Sink(FileChannel channel, ByteBuffer buffer) {
            this.channel = channel;
            this.buffer = buffer;
        }

        void putHeader(byte[] header) throws IOException {
            buffer.putLong(header.length);
            ByteBuffer src = ByteBuffer.wrap(header);
            while (src.hasRemaining()) {
                if (!buffer.hasRemaining()) {
                    flush();
                }
                int n = Math.min(src.remaining(), buffer.remaining());
                buffer.put(buffer.position(), src, src.position(), n);
                buffer.position(buffer.position() + n);
                src.position(src.position() + n);
            }
        }

        void begin(Tensor t) {
            tensor = t;
            remaining = t.elements();
        }

        void end() {
            if (remaining != 0) {
                throw new IllegalStateException("tensor " + tensor.name() + ": " + remaining + " of "
                        + tensor.elements() + " elements were not supplied");
            }
            tensor = null;
        }

        @Override
        public void putFloats(float[] values, int offset, int length) throws IOException {
            Objects.checkFromIndexSize(offset, length, values.length);
            claim(length);
            DType dtype = tensor.dtype();
            int elementBytes = dtype.bytes();
            int done = 0;
            while (done < length) {
                if (buffer.remaining() < elementBytes) {
                    flush();
                }
                int n = Math.min(length - done, buffer.remaining() / elementBytes);
                int pos = buffer.position();
                int from = offset + done;
                switch (dtype) {
                    case F32 -> buffer.asFloatBuffer().put(values, from, n);
                    case BF16 -> {
                        for (int i = 0; i < n; i++) {
                            buffer.putShort(pos + 2 * i, toBfloat16(values[from + i]));
                        }
                    }
                    case F16 -> {
                        for (int i = 0; i < n; i++) {
                            buffer.putShort(pos + 2 * i, Float.floatToFloat16(values[from + i]));
                        }
                    }
                }
                buffer.position(pos + n * elementBytes);
                done += n;
            }
        }

        @Override
        public void putBytes(ByteBuffer encoded) throws IOException {
            int elementBytes = requireTensor().dtype().bytes();
            if (encoded.remaining() % elementBytes != 0) {
                throw new IllegalArgumentException("tensor " + tensor.name() + ": " + encoded.remaining()
                        + " bytes is not a whole number of " + tensor.dtype().safetensorsName() + " elements");
            }
            claim(encoded.remaining() / elementBytes);
            while (encoded.hasRemaining()) {
                if (!buffer.hasRemaining()) {
                    flush();
                }
                int n = Math.min(encoded.remaining(), buffer.remaining());
                buffer.put(buffer.position(), encoded, encoded.position(), n);
                buffer.position(buffer.position() + n);
                encoded.position(encoded.position() + n);
            }
        }

        private Tensor requireTensor() {
            if (tensor == null) {
                throw new IllegalStateException("no tensor is being written");
            }
            return tensor;
        }

        private void claim(long elements) {
            requireTensor();
            if (elements > remaining) {
                throw new IllegalStateException("tensor " + tensor.name() + ": " + elements
                        + " more elements supplied but only " + remaining + " of " + tensor.elements() + " remain");
            }
            remaining -= elements;
        }

        void flush() throws IOException {
            buffer.flip();
            while (buffer.hasRemaining()) {
                channel.write(buffer);
            }
            buffer.clear();
        }
    }
}
