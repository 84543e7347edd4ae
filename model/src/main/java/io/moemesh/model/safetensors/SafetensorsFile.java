package io.moemesh.model.safetensors;

import io.moemesh.model.ModelFormatException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A memory-mapped safetensors file (https://github.com/huggingface/safetensors#format): an 8-byte
 * little-endian header length, a JSON header of {@code name → {dtype, shape, data_offsets}}, then the data.
 * The whole file is mapped as one {@link MemorySegment}, so files over 2 GiB work; only the header is read on
 * open, tensor pages are faulted in when used.
 */
public final class SafetensorsFile {
    /** The format caps the header at 100 MB; a larger value means a corrupt or foreign file. */
    private static final long MAX_HEADER = 100L * 1024 * 1024;
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final Path path;
    private final MemorySegment file;
    private final Map<String, TensorView> tensors;

    private SafetensorsFile(Path path, MemorySegment file, Map<String, TensorView> tensors) {
        this.path = path;
        this.file = file;
        this.tensors = tensors;
    }

    /**
     * Maps {@code path} in {@code arena}; the mapping lives as long as the arena. The header is read and every
     * entry checked through the channel before anything is mapped: a mapping made in a long-lived shared arena
     * cannot be undone alone, so a corrupt file that was mapped first stayed mapped, whole, until the arena
     * closed, and each retry (TensorStore maps a shard on first use) mapped it again.
     */
    public static SafetensorsFile open(Path path, Arena arena) {
        if (!Files.isRegularFile(path)) {
            throw new ModelFormatException(path + ": file not found");
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new ModelFormatException(path + ": truncated safetensors file (" + size + " bytes, no header length)");
            }
            long headerLen = read(ch, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            if (headerLen <= 0 || headerLen > MAX_HEADER || headerLen > size - 8) {
                throw new ModelFormatException(path + ": truncated or corrupt safetensors header (header length "
                        + headerLen + ", file size " + size + " bytes)");
            }
            byte[] headerBytes = read(ch, 8, (int) headerLen).array();
            long dataStart = 8 + headerLen;
            long dataLen = size - dataStart;
            Map<String, Entry> entries = new LinkedHashMap<>();
            for (Map.Entry<String, JsonNode> e : header(path, headerBytes).entrySet()) {
                if (e.getKey().equals("__metadata__")) {
                    continue;
                }
                entries.put(e.getKey(), parseEntry(path, e.getKey(), e.getValue(), dataLen));
            }
            checkCoverage(path, entries.values(), dataLen);
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            Map<String, TensorView> tensors = new LinkedHashMap<>();
            for (Entry t : entries.values()) {
                tensors.put(t.name(), new TensorView(t.name(), t.dtype(), t.shape(),
                        seg.asSlice(dataStart + t.begin(), t.end() - t.begin()), path.getFileName().toString()));
            }
            return new SafetensorsFile(path, seg, Collections.unmodifiableMap(tensors));
        } catch (IOException e) {
            throw new ModelFormatException(path + ": cannot read (" + e.getMessage() + ")", e);
        }
    }

    /**
     * The header's top-level entries in file order. Read as a stream, not as a tree: a tree keeps only the last of
     * two entries with one name, and the other's bytes (or a second view of the same bytes) went unnoticed.
     */
    private static Map<String, JsonNode> header(Path path, byte[] headerBytes) {
        Map<String, JsonNode> out = new LinkedHashMap<>();
        try (JsonParser p = JSON.createParser(new String(headerBytes, StandardCharsets.UTF_8))) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new ModelFormatException(path + ": safetensors header is not a JSON object");
            }
            while (p.nextToken() == JsonToken.PROPERTY_NAME) {
                String name = p.currentName();
                p.nextToken();
                JsonNode value = p.readValueAsTree();
                if (out.putIfAbsent(name, value) != null) {
                    throw new ModelFormatException(path + ": the safetensors header lists " + name
                            + " twice (each tensor once)");
                }
            }
            if (p.nextToken() != null) {
                throw new ModelFormatException(path + ": safetensors header is not valid JSON (content after its object)");
            }
        } catch (JacksonException e) {
            throw new ModelFormatException(path + ": safetensors header is not valid JSON (" + e.getOriginalMessage() + ")", e);
        }
        return out;
    }

    /**
     * The format's rule (https://github.com/huggingface/safetensors#format, "the byte buffer needs to be entirely
     * indexed, and cannot contain holes"): the tensors' ranges, in offset order, tile the data section exactly. An
     * overlap gave two tensors the same bytes, and a hole or trailing bytes went unread (a polyglot or damaged file).
     */
    private static void checkCoverage(Path path, Collection<Entry> entries, long dataLen) {
        List<Entry> byOffset = new ArrayList<>(entries);
        byOffset.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long covered = 0;
        Entry previous = null;
        for (Entry e : byOffset) {
            if (e.begin() < covered) {
                throw new ModelFormatException(path + ": tensors " + previous.name() + " " + previous.range() + " and "
                        + e.name() + " " + e.range() + " overlap (each data byte belongs to one tensor)");
            }
            if (e.begin() > covered) {
                throw new ModelFormatException(path + ": data bytes [" + covered + ", " + e.begin() + ") before tensor "
                        + e.name() + " belong to no tensor (the format allows no holes)");
            }
            covered = e.end();
            previous = e;
        }
        if (covered < dataLen) {
            throw new ModelFormatException(path + ": the last " + (dataLen - covered) + " data bytes"
                    + (previous == null ? "" : ", after tensor " + previous.name() + ",")
                    + " belong to no tensor (the format allows no holes)");
        }
    }

    /** One checked header entry, before the data is mapped. */
    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {
        String range() {
            return "[" + begin + ", " + end + ")";
        }
    }

    private static ByteBuffer read(FileChannel ch, long at, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (ch.read(b, at + b.position()) < 0) {
                throw new IOException("file ended at " + (at + b.position()));
            }
        }
        return b;
    }

    private static Entry parseEntry(Path path, String name, JsonNode entry, long dataLen) {
        String where = path + ": tensor " + name;
        JsonNode dtypeNode = entry.get("dtype");
        JsonNode shapeNode = entry.get("shape");
        JsonNode offsets = entry.get("data_offsets");
        if (dtypeNode == null || shapeNode == null || offsets == null || !shapeNode.isArray() || !offsets.isArray()
                || offsets.size() != 2) {
            throw new ModelFormatException(where + ": header entry needs dtype, shape and data_offsets [begin, end]");
        }
        String dtypeName = dtypeNode.isString() ? dtypeNode.stringValue() : dtypeNode.toString();
        DType dtype = DType.fromSafetensors(dtypeName).orElseThrow(() -> new ModelFormatException(
                where + ": dtype " + dtypeName + " is not supported (F32, BF16, F16)"));
        long[] shape = new long[shapeNode.size()];
        boolean empty = false;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new ModelFormatException(where + ": shape " + shapeNode + " is not a list of sizes");
            }
            shape[i] = d.longValue();
            empty |= shape[i] == 0;
        }
        // Exact arithmetic: a wrapped product could match the data_offsets by accident (2^62 + 2 F32 elements wrap to
        // 8 bytes) and map a tensor far smaller than its shape. A zero dimension makes the tensor empty, however
        // large the others.
        long bytes = 0;
        if (!empty) {
            try {
                bytes = dtype.bytes();
                for (long d : shape) {
                    bytes = Math.multiplyExact(bytes, d);
                }
            } catch (ArithmeticException overflow) {
                throw new ModelFormatException(where + ": shape " + shapeNode + " of " + dtype
                        + " has more than 2^63 - 1 bytes", overflow);
            }
        }
        for (JsonNode o : offsets.values()) {
            // As for shape: "8", 8.0 or null is no offset (read as -1, it was reported as a truncated file).
            if (!o.isIntegralNumber() || !o.canConvertToLong()) {
                throw new ModelFormatException(where + ": data_offsets " + offsets + " are not two byte offsets [begin, end]");
            }
        }
        long begin = offsets.get(0).longValue();
        long end = offsets.get(1).longValue();
        if (begin < 0 || end < begin || end > dataLen) {
            throw new ModelFormatException(where + ": data_offsets [" + begin + ", " + end
                    + "] fall outside the " + dataLen + " data bytes (truncated file?)");
        }
        if (end - begin != bytes) {
            throw new ModelFormatException(where + ": " + (end - begin) + " bytes do not hold shape " + shapeNode
                    + " of " + dtype);
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    public Path path() {
        return path;
    }

    public Set<String> names() {
        return tensors.keySet();
    }

    public Optional<TensorView> tensor(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    /** Total mapped size in bytes. */
    public long byteSize() {
        return file.byteSize();
    }
}
