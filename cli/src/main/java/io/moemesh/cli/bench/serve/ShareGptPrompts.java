package io.moemesh.cli.bench.serve;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * ShareGPT conversations ({@code [{"id", "conversations": [{"from": "human", "value": ...}, ...]}]}): the first
 * turn of each conversation is a prompt. As vLLM's ShareGPTDataset does, the prompts are shuffled with the seed
 * and sampled in that order (cycling when more are asked for than the file holds); the output length comes from
 * the command line because the first-turn files carry no completions.
 */
public final class ShareGptPrompts {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private ShareGptPrompts() {
    }

    /** Every first-turn prompt of {@code file}, in file order. */
    public static List<String> read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("--sharegpt " + file + ": file not found");
        }
        try {
            return parse(JSON.readTree(file.toFile()), file.toString());
        } catch (JacksonException e) {
            throw new IllegalArgumentException("--sharegpt " + file + ": not JSON: " + e.getOriginalMessage());
        }
    }

    static List<String> parse(JsonNode root, String source) {
        if (!root.isArray()) {
            throw new IllegalArgumentException("--sharegpt " + source + ": expected a JSON array of conversations");
        }
        List<String> prompts = new ArrayList<>();
        for (JsonNode conversation : root) {
            JsonNode turns = conversation.path("conversations");
            if (!turns.isArray() || turns.isEmpty()) {
                continue;
            }
            String text = turns.get(0).path("value").asString("");
            if (!text.isEmpty()) {
                prompts.add(text);
            }
        }
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("--sharegpt " + source + ": no conversation with a first turn");
        }
        return prompts;
    }

    /** {@code count} prompts: a seeded Fisher-Yates shuffle of {@code prompts}, repeated cyclically as needed. */
    public static List<String> sample(List<String> prompts, int count, long seed) {
        List<String> shuffled = new ArrayList<>(prompts);
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = shuffled.size() - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            shuffled.set(j, shuffled.set(i, shuffled.get(j)));
        }
        List<String> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            out.add(shuffled.get(i % shuffled.size()));
        }
        return out;
    }
}
