package io.moemesh.router.trace;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Reads a routing trace file into a {@link RouteTrace}, the format told from the content (a line starting with
 * '{' is JSON lines, anything else must be a known CSV header; see {@link TraceFormat}). One streaming pass over
 * the lines, then one pass over the tokens: linear in the file.
 *
 * <p>Every refusal is an {@link IllegalArgumentException} whose message starts with {@code "<file>:<line>: "}
 * (or {@code "<file>: "} for whole-file problems): bad JSON or CSV, a missing field, an expert id out of range or
 * repeated within a row, weights and experts of different lengths, a row with another top-k than the file's
 * first, a duplicate (token, layer) row, one token with two token ids, an unknown header, an empty file, a gap in
 * the layer numbers.
 *
 * <p>Expert count rule: a trace only shows the experts that were chosen, so the highest id seen may differ by
 * chance between two files of one model. Unless the caller knows the model's count ({@link #read(Path, int)}),
 * the trace's {@link RouteTrace#experts()} is the highest id seen + 1 rounded up to a power of two (Mixtral 8,
 * FLAME-MoE 64, DeepSeek-V3 256, Qwen3-MoE 128 all have power-of-two counts; a model that does not must pass its
 * count).
 */
public final class TraceReader {

    /** The largest expert count accepted (ids must be below it), so a garbled id cannot allocate gigabytes. */
    public static final int MAX_EXPERTS = 1 << 16;

    /** The largest span of layer numbers accepted in one file, for the same reason. */
    public static final int MAX_LAYERS = 4096;

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private TraceReader() {
    }

    /** Reads {@code path}, inferring the expert count (the class comment's rule). */
    public static RouteTrace read(Path path) {
        return read(path, 0);
    }

    /**
     * Reads {@code path}.
     *
     * @param experts the model's routed experts per layer (every id must be below it), or 0 to infer it
     */
    public static RouteTrace read(Path path, int experts) {
        if (experts < 0 || experts > MAX_EXPERTS) {
            throw new IllegalArgumentException("experts must be 0 (infer) or 1.." + MAX_EXPERTS + ", got " + experts);
        }
        Rows rows = new Rows(path.toString(), experts == 0 ? MAX_EXPERTS : experts);
        try (BufferedReader in = Files.newBufferedReader(path, StandardCharsets.UTF_8)) {
            String line;
            int number = 0;
            CsvLayout csv = null;
            TraceFormat format = null;
            while ((line = in.readLine()) != null) {
                number++;
                if (number == 1 && line.startsWith("\uFEFF")) {
                    line = line.substring(1);
                }
                line = line.strip();
                if (line.isEmpty()) {
                    continue;
                }
                if (format == null) {
                    if (line.startsWith("{")) {
                        format = TraceFormat.MIXTRAL_JSONL;
                    } else {
                        csv = CsvLayout.of(line, rows.source, number);
                        format = csv.format;
                        continue;
                    }
                }
                if (csv != null) {
                    csv.parse(line, number, rows);
                } else {
                    parseJson(line, number, rows);
                }
            }
            if (format == null) {
                throw new IllegalArgumentException(rows.source + ": empty file (no header and no rows)");
            }
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(path + ": no such file");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + path + ": " + e.getMessage(), e);
        }
        return rows.build(experts);
    }

    /** The format of {@code path}, from its first non-blank line (the header of a CSV trace). */
    public static TraceFormat detect(Path path) {
        try (BufferedReader in = Files.newBufferedReader(path, StandardCharsets.UTF_8)) {
            String line;
            int number = 0;
            while ((line = in.readLine()) != null) {
                number++;
                line = line.replace("\uFEFF", "").strip();
                if (!line.isEmpty()) {
                    return line.startsWith("{") ? TraceFormat.MIXTRAL_JSONL
                            : CsvLayout.of(line, path.toString(), number).format;
                }
            }
            throw new IllegalArgumentException(path + ": empty file (no header and no rows)");
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(path + ": no such file");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + path + ": " + e.getMessage(), e);
        }
    }

    private static void parseJson(String line, int number, Rows rows) {
        JsonNode row;
        try {
            row = JSON.readTree(line);
        } catch (JacksonException e) {
            throw rows.error(number, "not a JSON object: " + e.getOriginalMessage());
        }
        if (row == null || !row.isObject()) {
            throw rows.error(number, "not a JSON object");
        }
        int problem = jsonInt(row, "problem_id", number, rows);
        int token = jsonInt(row, "token_idx", number, rows);
        int layer = jsonInt(row, "layer", number, rows);
        JsonNode experts = jsonArray(row, "experts", number, rows);
        JsonNode weights = jsonArray(row, "gating_probs", number, rows);
        if (experts.size() != weights.size()) {
            throw rows.error(number, "experts has " + experts.size() + " entries but gating_probs " + weights.size());
        }
        int[] e = new int[experts.size()];
        float[] w = new float[weights.size()];
        for (int i = 0; i < e.length; i++) {
            JsonNode id = experts.get(i);
            if (!id.isIntegralNumber() || !id.canConvertToInt()) {
                throw rows.error(number, "experts[" + i + "] is not an integer: " + id);
            }
            e[i] = id.intValue();
            JsonNode p = weights.get(i);
            if (!p.isNumber()) {
                throw rows.error(number, "gating_probs[" + i + "] is not a number: " + p);
            }
            w[i] = (float) p.doubleValue();
        }
        rows.add(number, problem + ":" + token, -1, layer, e, w, "experts", "gating_probs");
    }

    private static int jsonInt(JsonNode row, String field, int number, Rows rows) {
        JsonNode value = row.get(field);
        if (value == null || value.isNull()) {
            throw rows.error(number, "missing field '" + field + "'");
        }
        if (!value.isIntegralNumber() || !value.canConvertToInt()) {
            throw rows.error(number, "field '" + field + "' is not an integer: " + value);
        }
        return value.intValue();
    }

    private static JsonNode jsonArray(JsonNode row, String field, int number, Rows rows) {
        JsonNode value = row.get(field);
        if (value == null || value.isNull()) {
            throw rows.error(number, "missing field '" + field + "'");
        }
        if (!value.isArray()) {
            throw rows.error(number, "field '" + field + "' is not an array: " + value);
        }
        return value;
    }

    /** A recognised CSV header: which format, and top-k. */
    private record CsvLayout(TraceFormat format, int topK, int columns) {

        static CsvLayout of(String header, String source, int number) {
            String[] names = header.split(",", -1);
            for (TraceFormat f : TraceFormat.values()) {
                int prefix = f.keyColumns().size() + 2;
                if (!f.csv() || names.length <= prefix || (names.length - prefix) % 2 != 0) {
                    continue;
                }
                int k = (names.length - prefix) / 2;
                if (f.csvHeader(k).equals(String.join(",", names).replace(" ", ""))) {
                    return new CsvLayout(f, k, names.length);
                }
            }
            throw new IllegalArgumentException(source + ":" + number + ": unknown header '" + abbreviate(header)
                    + "' (expected JSON lines, 'token_idx,token_id,layer,e0..e<k-1>,w0..w<k-1>' or"
                    + " 'seq,pos,token_id,layer,e0..e<k-1>,w0..w<k-1>')");
        }

        void parse(String line, int number, Rows rows) {
            String[] cells = line.split(",", -1);
            if (cells.length != columns) {
                throw rows.error(number, cells.length + " columns, the header has " + columns);
            }
            int keys = format.keyColumns().size();
            StringBuilder key = new StringBuilder();
            for (int i = 0; i < keys; i++) {
                int v = csvInt(cells[i], format.keyColumns().get(i), number, rows);
                if (v < 0) {
                    throw rows.error(number, "column '" + format.keyColumns().get(i) + "' is negative: " + v);
                }
                key.append(i == 0 ? "" : ":").append(v);
            }
            int tokenId = csvInt(cells[keys], "token_id", number, rows);
            if (tokenId < 0) {
                throw rows.error(number, "column 'token_id' is negative: " + tokenId);
            }
            int layer = csvInt(cells[keys + 1], "layer", number, rows);
            int[] e = new int[topK];
            float[] w = new float[topK];
            for (int i = 0; i < topK; i++) {
                e[i] = csvInt(cells[keys + 2 + i], "e" + i, number, rows);
                String cell = cells[keys + 2 + topK + i].strip();
                try {
                    w[i] = Float.parseFloat(cell);
                } catch (NumberFormatException ex) {
                    throw rows.error(number, "column 'w" + i + "' is not a number: '" + abbreviate(cell) + "'");
                }
            }
            rows.add(number, key.toString(), tokenId, layer, e, w, "e", "w");
        }

        private static int csvInt(String cell, String column, int number, Rows rows) {
            try {
                return Integer.parseInt(cell.strip());
            } catch (NumberFormatException ex) {
                throw rows.error(number, "column '" + column + "' is not an integer: '" + abbreviate(cell) + "'");
            }
        }
    }

    private static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 77) + "...";
    }

    /** One token while its rows arrive: its layers by file number, and the line that gave each. */
    private static final class Pending {
        final String key;
        final int tokenId;
        final Map<Integer, int[]> experts = new HashMap<>();
        final Map<Integer, float[]> weights = new HashMap<>();
        final Map<Integer, Integer> lines = new HashMap<>();

        Pending(String key, int tokenId) {
            this.key = key;
            this.tokenId = tokenId;
        }
    }

    /** The rows read so far, checked one by one. */
    private static final class Rows {
        final String source;
        final int idLimit;
        final Map<String, Pending> tokens = new LinkedHashMap<>();
        final TreeSet<Integer> layers = new TreeSet<>();
        int topK;
        int topKLine;
        int maxId = -1;

        Rows(String source, int idLimit) {
            this.source = source;
            this.idLimit = idLimit;
        }

        IllegalArgumentException error(int line, String message) {
            return new IllegalArgumentException(source + ":" + line + ": " + message);
        }

        void add(int line, String key, int tokenId, int layer, int[] experts, float[] weights, String eName,
                 String wName) {
            if (layer < 0) {
                throw error(line, "layer is negative: " + layer);
            }
            if (experts.length == 0) {
                throw error(line, "no experts");
            }
            if (topK == 0) {
                topK = experts.length;
                topKLine = line;
            } else if (experts.length != topK) {
                throw error(line, experts.length + " experts, but line " + topKLine + " has " + topK
                        + " (one top-k per trace)");
            }
            for (int i = 0; i < experts.length; i++) {
                if (experts[i] < 0 || experts[i] >= idLimit) {
                    throw error(line, eName + (eName.equals("e") ? "" + i : "[" + i + "]") + " = " + experts[i]
                            + " is out of range 0.." + (idLimit - 1));
                }
                for (int j = 0; j < i; j++) {
                    if (experts[j] == experts[i]) {
                        throw error(line, "expert " + experts[i] + " repeated in one row");
                    }
                }
                if (!Float.isFinite(weights[i]) || weights[i] < 0) {
                    throw error(line, wName + (wName.equals("w") ? "" + i : "[" + i + "]") + " = " + weights[i]
                            + " is not a finite non-negative gate weight");
                }
                maxId = Math.max(maxId, experts[i]);
            }
            Pending token = tokens.computeIfAbsent(key, k -> new Pending(k, tokenId));
            if (token.tokenId != tokenId) {
                throw error(line, "token " + key + " has token_id " + tokenId + " here but "
                        + token.tokenId + " on line " + token.lines.values().iterator().next());
            }
            Integer previous = token.lines.putIfAbsent(layer, line);
            if (previous != null) {
                throw error(line, "duplicate row for token " + key + " layer " + layer + " (first on line "
                        + previous + ")");
            }
            token.experts.put(layer, experts);
            token.weights.put(layer, weights);
            layers.add(layer);
        }

        RouteTrace build(int knownExperts) {
            if (tokens.isEmpty()) {
                throw new IllegalArgumentException(source + ": no rows (an empty trace)");
            }
            int first = layers.first();
            int span = layers.last() - first + 1;
            if (span > MAX_LAYERS) {
                throw new IllegalArgumentException(source + ": layers " + first + ".." + layers.last()
                        + " span more than " + MAX_LAYERS);
            }
            if (layers.size() != span) {
                for (int l = first; l <= layers.last(); l++) {
                    if (!layers.contains(l)) {
                        throw new IllegalArgumentException(source + ": no row for layer " + l + " (the file has layers "
                                + first + ".." + layers.last() + "; layers must be contiguous)");
                    }
                }
            }
            int experts = knownExperts > 0 ? knownExperts : ceilPowerOfTwo(Math.max(maxId + 1, topK));
            List<TokenRoute> out = new ArrayList<>(tokens.size());
            for (Pending p : tokens.values()) {
                int[][] e = new int[span][];
                float[][] w = new float[span][];
                for (var entry : p.experts.entrySet()) {
                    e[entry.getKey() - first] = entry.getValue();
                    w[entry.getKey() - first] = p.weights.get(entry.getKey());
                }
                out.add(new TokenRoute(p.key, p.tokenId, e, w));
            }
            return new RouteTrace(source, first, span, experts, topK, out);
        }

        private static int ceilPowerOfTwo(int n) {
            return n <= 1 ? 1 : Integer.highestOneBit(n - 1) << 1;
        }
    }
}
