package io.moemesh.cli.bench.serve;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeFormatterBuilder;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoField;
import java.util.ArrayList;
import java.util.List;

/**
 * Azure LLM inference traces (Azure/AzurePublicDataset, {@code AzureLLMInferenceTrace_{conv,code}.csv}):
 * {@code TIMESTAMP,ContextTokens,GeneratedTokens}, one request per row in arrival order. TIMESTAMP is a wall-clock
 * time with up to 7 fractional digits ({@code 2023-11-16 18:15:46.6805900}); the rows become arrival offsets in
 * seconds from the first row.
 */
public final class AzureTrace {
    private static final DateTimeFormatter TIMESTAMP = new DateTimeFormatterBuilder()
            .appendPattern("yyyy-MM-dd HH:mm:ss")
            .optionalStart().appendFraction(ChronoField.NANO_OF_SECOND, 0, 9, true).optionalEnd()
            .toFormatter();

    /** One request of the trace: arrival offset (s) from the first row, input and output lengths (tokens). */
    public record Row(double arrivalSeconds, int contextTokens, int generatedTokens) {
    }

    private AzureTrace() {
    }

    /** The first {@code limit} rows of {@code file} (all when there are fewer). */
    public static List<Row> read(Path file, int limit) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("--trace-file " + file + ": file not found");
        }
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            return parse(in, file.toString(), limit);
        } catch (IOException e) {
            throw new UncheckedIOException("--trace-file " + file + ": " + e.getMessage(), e);
        }
    }

    static List<Row> parse(BufferedReader in, String source, int limit) throws IOException {
        String header = in.readLine();
        if (header == null) {
            throw new IllegalArgumentException("--trace-file " + source + ": empty file");
        }
        String[] names = header.strip().replace("\uFEFF", "").split(",");
        int ts = indexOf(names, "TIMESTAMP", source);
        int ctx = indexOf(names, "ContextTokens", source);
        int gen = indexOf(names, "GeneratedTokens", source);
        List<Row> rows = new ArrayList<>();
        LocalDateTime first = null;
        String line;
        int lineNo = 1;
        while (rows.size() < limit && (line = in.readLine()) != null) {
            lineNo++;
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split(",", -1);
            if (f.length < names.length) {
                throw new IllegalArgumentException("--trace-file " + source + ":" + lineNo + ": expected "
                        + names.length + " columns, got " + f.length);
            }
            try {
                LocalDateTime t = LocalDateTime.parse(f[ts].strip(), TIMESTAMP);
                if (first == null) {
                    first = t;
                }
                int c = Integer.parseInt(f[ctx].strip());
                int g = Integer.parseInt(f[gen].strip());
                if (c < 0 || g < 0) {
                    throw new NumberFormatException("negative token count");
                }
                rows.add(new Row(Duration.between(first, t).toNanos() / 1e9, c, g));
            } catch (DateTimeParseException | NumberFormatException e) {
                throw new IllegalArgumentException("--trace-file " + source + ":" + lineNo + ": " + e.getMessage());
            }
        }
        if (rows.isEmpty()) {
            throw new IllegalArgumentException("--trace-file " + source + ": no requests");
        }
        return rows;
    }

    private static int indexOf(String[] names, String name, String source) {
        for (int i = 0; i < names.length; i++) {
            if (names[i].strip().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException("--trace-file " + source + ": no column " + name
                + " (expected TIMESTAMP,ContextTokens,GeneratedTokens)");
    }
}
