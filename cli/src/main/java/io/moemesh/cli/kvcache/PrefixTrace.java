package io.moemesh.cli.kvcache;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A prefix-cache trace in Mooncake's JSONL format: one request per line, {@code hash_ids} its chain of block ids
 * (one id per 512-token block; equal leading ids are a shared prefix) and {@code timestamp} its arrival in ms
 * (optional; the conversation policy uses think times). Other fields ({@code input_length}, {@code output_length})
 * are ignored. Blank lines are skipped.
 *
 * @param requests each request's block ids, in file order
 * @param arrivals each request's {@code timestamp} (ms), -1 where the line has none
 */
record PrefixTrace(List<long[]> requests, List<Long> arrivals) {

    PrefixTrace {
        if (requests.size() != arrivals.size()) {
            throw new IllegalArgumentException("arrivals: one per request expected, got " + arrivals.size()
                    + " for " + requests.size());
        }
    }

    /** A trace without arrival times. */
    PrefixTrace(List<long[]> requests) {
        this(requests, java.util.Collections.nCopies(requests.size(), -1L));
    }

    /** Blocks over all requests. */
    long blocks() {
        long b = 0;
        for (long[] r : requests) {
            b += r.length;
        }
        return b;
    }

    /** Distinct block ids. */
    int distinctBlocks() {
        Set<Long> ids = new HashSet<>();
        for (long[] r : requests) {
            for (long id : r) {
                ids.add(id);
            }
        }
        return ids.size();
    }

    /**
     * Reads a trace.
     *
     * @throws IllegalArgumentException naming the file and line of malformed input, or the file when unreadable or
     *                                  empty
     */
    static PrefixTrace read(Path file) {
        JsonMapper json = JsonMapper.builder().build();
        List<long[]> requests = new ArrayList<>();
        List<Long> arrivals = new ArrayList<>();
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            int number = 0;
            while ((line = in.readLine()) != null) {
                number++;
                if (line.isBlank()) {
                    continue;
                }
                JsonNode node = object(json, line, file, number);
                requests.add(chain(node, file, number));
                arrivals.add(arrival(node, file, number));
            }
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("--trace: no such file " + file);
        } catch (IOException e) {
            throw new IllegalArgumentException("--trace: cannot read " + file + ": " + e.getMessage());
        }
        if (requests.isEmpty()) {
            throw new IllegalArgumentException(file + " has no requests");
        }
        return new PrefixTrace(List.copyOf(requests), List.copyOf(arrivals));
    }

    private static JsonNode object(JsonMapper json, String line, Path file, int number) {
        JsonNode node;
        try {
            node = json.readTree(line);
        } catch (JacksonException e) {
            throw new IllegalArgumentException(file + " line " + number + ": not a JSON object");
        }
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException(file + " line " + number + ": not a JSON object");
        }
        return node;
    }

    private static long arrival(JsonNode node, Path file, int number) {
        JsonNode t = node.get("timestamp");
        if (t == null || t.isNull()) {
            return -1;
        }
        if (!t.isNumber() || t.asDouble() < 0 || !Double.isFinite(t.asDouble())) {
            throw new IllegalArgumentException(file + " line " + number
                    + ": timestamp must be a non-negative number of ms, got " + t);
        }
        return (long) t.asDouble();
    }

    private static long[] chain(JsonNode node, Path file, int number) {
        JsonNode ids = node.get("hash_ids");
        if (ids == null || !ids.isArray()) {
            throw new IllegalArgumentException(file + " line " + number + ": hash_ids must be an array of block ids");
        }
        if (ids.isEmpty()) {
            throw new IllegalArgumentException(file + " line " + number + ": hash_ids must not be empty");
        }
        long[] chain = new long[ids.size()];
        for (int i = 0; i < chain.length; i++) {
            JsonNode id = ids.get(i);
            if (!id.isIntegralNumber() || !id.canConvertToLong() || id.asLong() < 0) {
                throw new IllegalArgumentException(file + " line " + number + ": hash_ids[" + i
                        + "] must be a non-negative integer, got " + id);
            }
            chain[i] = id.asLong();
        }
        return chain;
    }
}
