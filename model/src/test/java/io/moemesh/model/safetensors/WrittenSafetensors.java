package io.moemesh.model.safetensors;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Test-only, deliberately naive view of a written safetensors file, independent of the production reader: the raw
 * header (parsed with Jackson) and each tensor's bytes read with a plain FileChannel.
 */
public final class WrittenSafetensors {

    /** One header entry. */
    public record Entry(String dtype, List<Long> shape, long begin, long end) {
    }

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final Path file;
    private final long headerLength;
    private final byte[] headerBytes;
    private final JsonNode header;
    private final Map<String, Entry> entries = new LinkedHashMap<>();

    private WrittenSafetensors(Path file, long headerLength, byte[] headerBytes) {
        this.file = file;
        this.headerLength = headerLength;
        this.headerBytes = headerBytes;
        this.header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
        for (Map.Entry<String, JsonNode> e : header.properties()) {
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            JsonNode v = e.getValue();
            List<Long> shape = new ArrayList<>();
            v.get("shape").forEach(d -> shape.add(d.asLong()));
            entries.put(e.getKey(), new Entry(v.get("dtype").asString(), List.copyOf(shape),
                    v.get("data_offsets").get(0).asLong(), v.get("data_offsets").get(1).asLong()));
        }
    }

    public static WrittenSafetensors open(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, len, 0);
            long n = len.flip().getLong();
            ByteBuffer h = ByteBuffer.allocate(Math.toIntExact(n));
            readFully(ch, h, 8);
            return new WrittenSafetensors(file, n, h.array());
        }
    }

    public long headerLength() {
        return headerLength;
    }

    public byte[] headerBytes() {
        return headerBytes.clone();
    }

    public JsonNode header() {
        return header;
    }

    /** Tensor entries in header order (without {@code __metadata__}). */
    public Map<String, Entry> entries() {
        return entries;
    }

    /** The raw little-endian bytes of {@code name}. */
    public ByteBuffer bytes(String name) throws IOException {
        Entry e = entries.get(name);
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(e.end() - e.begin())).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            readFully(ch, out, 8 + headerLength + e.begin());
        }
        return out.flip();
    }

    /** {@code name} decoded to floats (F32, BF16 or F16). */
    public float[] floats(String name) throws IOException {
        ByteBuffer b = bytes(name);
        String dtype = entries.get(name).dtype();
        float[] out = new float[b.remaining() / (dtype.equals("F32") ? 4 : 2)];
        for (int i = 0; i < out.length; i++) {
            out[i] = switch (dtype) {
                case "F32" -> b.getFloat();
                case "BF16" -> Float.intBitsToFloat((b.getShort() & 0xFFFF) << 16);
                case "F16" -> Float.float16ToFloat(b.getShort());
                default -> throw new IllegalArgumentException(dtype);
            };
        }
        return out;
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long position) throws IOException {
        while (dst.hasRemaining()) {
            int n = ch.read(dst, position);
            if (n < 0) {
                throw new IOException("unexpected end of file");
            }
            position += n;
        }
    }
}
