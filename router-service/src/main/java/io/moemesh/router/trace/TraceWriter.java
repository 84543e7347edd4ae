package io.moemesh.router.trace;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes a {@link RouteTrace} in one of the {@link TraceFormat}s, so that {@link TraceReader} reads back the same
 * tokens (in the same order), layer numbers, experts and weights (as floats). Rows are written token by token,
 * layers ascending. Used to split a trace into train and test files and by tests to write synthetic traces.
 */
public final class TraceWriter {

    private TraceWriter() {
    }

    /**
     * Writes {@code trace} to {@code out} in {@code format}; every token key must have the format's key columns
     * ({@code "<token_idx>"}, {@code "<seq>:<pos>"} or {@code "<problem_id>:<token_idx>"}, non-negative
     * integers) and, for the CSV formats, a token id ≥ 0.
     */
    public static void write(RouteTrace trace, TraceFormat format, Path out) {
        try (BufferedWriter w = Files.newBufferedWriter(out, StandardCharsets.UTF_8)) {
            if (format.csv()) {
                w.write(format.csvHeader(trace.topK()));
                w.newLine();
            }
            StringBuilder row = new StringBuilder();
            for (TokenRoute token : trace.tokens()) {
                String[] key = keyParts(token, format);
                if (format.csv() && token.tokenId() < 0) {
                    throw new IllegalArgumentException("token " + token.key() + " has no token id; "
                            + format + " needs one");
                }
                for (int l = 0; l < trace.layers(); l++) {
                    if (!token.has(l)) {
                        continue;
                    }
                    row.setLength(0);
                    int[] e = token.experts()[l];
                    float[] g = token.weights()[l];
                    if (format.csv()) {
                        row.append(String.join(",", key)).append(',').append(token.tokenId()).append(',')
                                .append(trace.layerNumber(l));
                        for (int x : e) {
                            row.append(',').append(x);
                        }
                        for (float x : g) {
                            row.append(',').append(x);
                        }
                    } else {
                        row.append("{\"problem_id\": ").append(key[0]).append(", \"token_idx\": ").append(key[1])
                                .append(", \"layer\": ").append(trace.layerNumber(l)).append(", \"experts\": [");
                        for (int i = 0; i < e.length; i++) {
                            row.append(i == 0 ? "" : ", ").append(e[i]);
                        }
                        row.append("], \"gating_probs\": [");
                        for (int i = 0; i < g.length; i++) {
                            row.append(i == 0 ? "" : ", ").append(g[i]);
                        }
                        row.append("]}");
                    }
                    w.write(row.toString());
                    w.newLine();
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + out + ": " + e.getMessage(), e);
        }
    }

    private static String[] keyParts(TokenRoute token, TraceFormat format) {
        String[] parts = token.key().split(":", -1);
        boolean ok = parts.length == format.keyColumns().size();
        for (int i = 0; ok && i < parts.length; i++) {
            ok = parts[i].matches("\\d{1,9}");
        }
        if (!ok) {
            throw new IllegalArgumentException("token key '" + token.key() + "' does not fit " + format + " (needs "
                    + String.join(":", format.keyColumns().stream().map(c -> "<" + c + ">").toList()) + ")");
        }
        return parts;
    }
}
