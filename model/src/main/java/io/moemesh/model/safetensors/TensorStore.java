package io.moemesh.model.safetensors;

import io.moemesh.model.ModelFormatException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The weights of a model directory: one {@code model.safetensors} or shards listed by
 * {@code model.safetensors.index.json} (the single file when both are there, see {@link #open}). Shards are mapped lazily, the first time one of their tensors is asked
 * for, so a process that needs only some experts maps only their shards and touches only their pages.
 */
public final class TensorStore implements AutoCloseable {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final String SINGLE = "model.safetensors";
    private static final String INDEX = "model.safetensors.index.json";

    private final Path dir;
    private final Arena arena = Arena.ofShared();
    /** tensor name → shard file name; null for a single-file checkpoint (then every name is in SINGLE). */
    private final Map<String, String> weightMap;
    private final Map<String, SafetensorsFile> opened = new ConcurrentHashMap<>();

    private TensorStore(Path dir, Map<String, String> weightMap) {
        this.dir = dir;
        this.weightMap = weightMap;
    }

    /**
     * Opens the weights of {@code modelDir}: {@code model.safetensors} when it is there, else the shards of
     * {@code model.safetensors.index.json}. The order is transformers' (its checkpoint resolution takes the single
     * file first and the index only without it), so a directory holding both serves the weights transformers loads
     * from it; preferring the index served stale shards left beside a new single file.
     */
    public static TensorStore open(Path modelDir) {
        if (Files.isRegularFile(modelDir.resolve(SINGLE))) {
            return new TensorStore(modelDir, null);
        }
        Path index = modelDir.resolve(INDEX);
        if (Files.isRegularFile(index)) {
            return new TensorStore(modelDir, readIndex(index));
        }
        throw new ModelFormatException(modelDir + ": no " + SINGLE + " or " + INDEX + " found");
    }

    private static Map<String, String> readIndex(Path index) {
        JsonNode root;
        try {
            root = JSON.readTree(index.toFile());
        } catch (JacksonException e) {
            throw new ModelFormatException(index + ": not valid JSON (" + e.getOriginalMessage() + ")", e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new ModelFormatException(index + ": \"weight_map\" object is missing");
        }
        Map<String, String> out = new HashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            String shard = e.getValue().stringValue("");
            if (shard.isEmpty() || shard.contains("/") || shard.contains("\\")) {
                throw new ModelFormatException(index + ": weight_map entry " + e.getKey() + " names no shard file in the directory");
            }
            out.put(e.getKey(), shard);
        }
        return out;
    }

    public Path directory() {
        return dir;
    }

    public boolean contains(String name) {
        if (weightMap != null) {
            return weightMap.containsKey(name);
        }
        return file(SINGLE).tensor(name).isPresent();
    }

    /** The tensor, which must exist. */
    public TensorView tensor(String name) {
        String shard = weightMap == null ? SINGLE : weightMap.get(name);
        if (shard == null) {
            throw new ModelFormatException(dir.resolve(INDEX) + ": tensor " + name + " is missing");
        }
        SafetensorsFile f = file(shard);
        return f.tensor(name).orElseThrow(() -> new ModelFormatException(f.path() + ": tensor " + name + " is missing"));
    }

    /** The tensor, which must exist with exactly this shape. */
    public TensorView tensor(String name, long... shape) {
        TensorView t = tensor(name);
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException(dir.resolve(t.file()) + ": tensor " + name + " has shape " + t.shapeString()
                    + ", expected " + Arrays.toString(shape) + " from config.json");
        }
        return t;
    }

    private SafetensorsFile file(String shard) {
        return opened.computeIfAbsent(shard, s -> SafetensorsFile.open(dir.resolve(s), arena));
    }

    /** Shards mapped so far (for tests of lazy loading and for metrics). */
    public int openedShards() {
        return opened.size();
    }

    @Override
    public void close() {
        arena.close();
    }
}
