package io.moemesh.model.kv;

import io.moemesh.model.ModelFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * What a model's KV blocks are salted with in every {@link BlockHash}, so two models never share a block: a
 * SHA-256 over what decides the keys and values a token produces — config.json and, for every weight file, its
 * safetensors header (tensor names, dtypes, shapes, offsets) and samples of every tensor's data — and nothing
 * about where the model lies: renaming or copying the directory keeps the fingerprint.
 *
 * <p>Why samples of every tensor: a fine-tuned model has its base model's config.json and headers byte for byte,
 * yet other weights; headers alone would let their blocks mix. A fine-tune, or a merged LoRA, changes every
 * element of each tensor it touches (a LoRA delta B·A is dense), so a tensor's first bytes already tell it apart;
 * the middle and last {@value #SAMPLE_BYTES} bytes are read as well, and a tensor of at most
 * 3 × {@value #SAMPLE_BYTES} bytes (a norm vector, a small router) is read whole. Sampling per file instead (v1:
 * the data section's first, middle and last 4 KiB) missed a change to any tensor lying elsewhere, and a model
 * that gives other tokens got its base model's fingerprint. What is not caught: an edit of some elements of one
 * large tensor that spares all three of its samples (no training method produces one).
 *
 * <p>Cost: at most 12 KiB per tensor, whatever the checkpoint's size. Mixtral-8x7B (995 tensors, 93 GB in
 * bf16) reads about 11.4 MiB of weights: 930 matrices × 12 KiB plus 65 norm vectors read whole (8 KiB each), in
 * under 3,000 positioned reads, besides its headers and config.json. The tokenizer is not part of it: blocks are
 * keyed by token ids, and the keys and values of given ids do not depend on how text became them.
 *
 * <p>Digest layout (version 2): SHA-256 of the ASCII tag {@code moemesh-model-fingerprint-v2}, then per item
 * {@code uint32 LE length ‖ name (UTF-8) ‖ uint64 LE length ‖ content}: first {@code config.json} with the file's
 * bytes, then for every weight file in name order ({@code model.safetensors}, else the shards
 * {@code model.safetensors.index.json} lists: the files {@code TensorStore} reads) the item {@code <file>#header}
 * with the file's first 8 + N bytes (the header length and the header), then for each of its tensors in name
 * order the items {@code <file>#<tensor>@<offset>}, the offset counted from the tensor's first byte: one item
 * with the whole tensor when it has at most 3 × {@value #SAMPLE_BYTES} bytes, else three of {@value #SAMPLE_BYTES}
 * bytes at offsets 0, (size − {@value #SAMPLE_BYTES}) / 2 and size − {@value #SAMPLE_BYTES}. Header format:
 * https://github.com/huggingface/safetensors#format.
 */
public final class ModelFingerprint {
    /** Bytes of a fingerprint (SHA-256). */
    public static final int BYTES = 32;
    /** Size of each of the three data samples per tensor (a tensor of at most three samples is read whole). */
    public static final int SAMPLE_BYTES = 4096;
    private static final String TAG = "moemesh-model-fingerprint-v2";
    private static final long MAX_HEADER = 100L * 1024 * 1024;
    private static final String SINGLE = "model.safetensors";
    private static final String INDEX = "model.safetensors.index.json";
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final byte[] digest;

    private ModelFingerprint(byte[] digest) {
        this.digest = digest;
    }

    /** A fingerprint known from elsewhere (tests, another tier): exactly {@link #BYTES} bytes. */
    public static ModelFingerprint of(byte[] digest) {
        if (digest.length != BYTES) {
            throw new IllegalArgumentException("a model fingerprint has " + BYTES + " bytes, got " + digest.length);
        }
        return new ModelFingerprint(digest.clone());
    }

    /**
     * Reads the model directory's config.json, its weight files' headers and samples of each of their tensors.
     *
     * @throws ModelFormatException naming the file when one is missing or not a safetensors file
     */
    public static ModelFingerprint of(Path modelDir) {
        MessageDigest d = sha256();
        d.update(TAG.getBytes(StandardCharsets.US_ASCII));
        Path config = modelDir.resolve("config.json");
        try {
            item(d, "config.json", Files.readAllBytes(config));
        } catch (IOException e) {
            throw new ModelFormatException(config + ": cannot read the model's config.json (" + e.getMessage() + ")", e);
        }
        for (String file : weightFiles(modelDir)) {
            weightFile(d, modelDir.resolve(file), file);
        }
        return new ModelFingerprint(d.digest());
    }

    private static TreeSet<String> weightFiles(Path dir) {
        Path index = dir.resolve(INDEX);
        TreeSet<String> files = new TreeSet<>();
        // The files TensorStore.open reads, in its (transformers') order: model.safetensors first, the index only
        // without it. The fingerprint is of the weights served, so it must not read the others.
        if (Files.isRegularFile(dir.resolve(SINGLE))) {
            files.add(SINGLE);
        } else if (Files.isRegularFile(index)) {
            JsonNode map;
            try {
                JsonNode root = JSON.readTree(index.toFile());
                map = root == null ? null : root.get("weight_map");
            } catch (JacksonException e) {
                throw new ModelFormatException(index + ": not valid JSON (" + e.getOriginalMessage() + ")", e);
            }
            if (map == null || !map.isObject()) {
                throw new ModelFormatException(index + ": \"weight_map\" object is missing");
            }
            for (Map.Entry<String, JsonNode> e : map.properties()) {
                String shard = e.getValue().stringValue("");
                if (shard.isEmpty() || shard.contains("/") || shard.contains("\\")) {
                    throw new ModelFormatException(index + ": weight_map entry " + e.getKey()
                            + " names no shard file in the directory");
                }
                files.add(shard);
            }
        } else {
            throw new ModelFormatException(dir + ": no " + SINGLE + " or " + INDEX + " found");
        }
        return files;
    }

    private static void weightFile(MessageDigest d, Path path, String name) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            if (size < 8 || ch.read(len, 0) != 8) {
                throw new ModelFormatException(path + ": truncated safetensors file (" + size + " bytes, no header length)");
            }
            long headerLen = len.getLong(0);
            if (headerLen <= 0 || headerLen > MAX_HEADER || headerLen > size - 8) {
                throw new ModelFormatException(path + ": truncated or corrupt safetensors header (header length "
                        + headerLen + ", file size " + size + " bytes)");
            }
            byte[] header = read(ch, 0, (int) (8 + headerLen));
            item(d, name + "#header", header);
            long dataStart = 8 + headerLen;
            long dataLen = size - dataStart;
            for (Map.Entry<String, long[]> t : tensorRanges(path, header, dataLen).entrySet()) {
                long begin = t.getValue()[0];
                long bytes = t.getValue()[1] - begin;
                String item = name + "#" + t.getKey() + "@";
                if (bytes <= 3L * SAMPLE_BYTES) {
                    item(d, item + 0, read(ch, dataStart + begin, (int) bytes));
                } else {
                    for (long at : new long[] {0, (bytes - SAMPLE_BYTES) / 2, bytes - SAMPLE_BYTES}) {
                        item(d, item + at, read(ch, dataStart + begin + at, SAMPLE_BYTES));
                    }
                }
            }
        } catch (IOException e) {
            throw new ModelFormatException(path + ": cannot read the weight file (" + e.getMessage() + ")", e);
        }
    }

    /** Tensor name → [begin, end) within the data section, in name order; refuses offsets outside the data. */
    private static TreeMap<String, long[]> tensorRanges(Path path, byte[] header, long dataLen) {
        JsonNode root;
        try {
            root = JSON.readTree(new String(header, 8, header.length - 8, StandardCharsets.UTF_8));
        } catch (JacksonException e) {
            throw new ModelFormatException(path + ": safetensors header is not valid JSON (" + e.getOriginalMessage() + ")", e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(path + ": safetensors header is not a JSON object");
        }
        TreeMap<String, long[]> ranges = new TreeMap<>();
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            JsonNode offsets = e.getValue().get("data_offsets");
            long begin = offsets != null && offsets.isArray() && offsets.size() == 2 ? offsets.get(0).longValue(-1) : -1;
            long end = begin < 0 ? -1 : offsets.get(1).longValue(-1);
            if (begin < 0 || end < begin || end > dataLen) {
                throw new ModelFormatException(path + ": tensor " + e.getKey() + ": data_offsets " + offsets
                        + " fall outside the " + dataLen + " data bytes (truncated file?)");
            }
            ranges.put(e.getKey(), new long[] {begin, end});
        }
        return ranges;
    }

    private static byte[] read(FileChannel ch, long at, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (ch.read(b, at + b.position()) < 0) {
                throw new IOException("file ended at " + (at + b.position()));
            }
        }
        return b.array();
    }

    private static void item(MessageDigest d, String name, byte[] content) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        d.update(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(n.length).array());
        d.update(n);
        d.update(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(content.length).array());
        d.update(content);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }

    /** A copy of the 32 bytes. */
    public byte[] bytes() {
        return digest.clone();
    }

    /** The bytes themselves, for {@link BlockHash} (never modified). */
    byte[] raw() {
        return digest;
    }

    public String hex() {
        return HexFormat.of().formatHex(digest);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ModelFingerprint f && Arrays.equals(digest, f.digest);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(digest);
    }

    @Override
    public String toString() {
        return hex().substring(0, 16);
    }
}
