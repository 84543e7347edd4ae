package io.moemesh.cli.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

class KvcacheReplayCommandTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path dir;

    private Path write(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, content);
        return p;
    }

    private static String line(long timestamp, List<Long> ids) {
        return "{\"timestamp\": " + timestamp + ", \"input_length\": " + 512 * ids.size() + ", \"output_length\": 10, "
                + "\"hash_ids\": " + ids + "}\n";
    }

    /**
     * Three requests [0 1] [0 2] [0 1], capacity 1 DRAM + 1 SSD. LRU: request 1 hits 0, then storing 2 evicts 1
     * (least recent), so request 2 hits only 0: 2 of 6 blocks. Belady: 2 is never needed again and is not stored,
     * so request 2 hits 0 and 1: 3 of 6.
     */
    private Path handTrace() throws IOException {
        return write("hand.jsonl", line(0, List.of(0L, 1L)) + line(1, List.of(0L, 2L)) + line(2, List.of(0L, 1L)));
    }

    private static JsonNode lastJson(CliRun r) {
        return JSON.readTree(r.lastLine());
    }

    @Test
    void replay_handTrace_lruAndBeladyMatchTheHandCount() throws IOException {
        CliRun r = CliRun.of("kvcache", "replay", "--trace", handTrace().toString(), "--dram-blocks", "1",
                "--ssd-blocks", "1", "--policy", "lru", "--json");

        assertThat(r.exitCode()).as(r.err()).isZero();
        JsonNode j = lastJson(r);
        assertThat(j.get("requests").asLong()).isEqualTo(3);
        assertThat(j.get("blocks").asLong()).isEqualTo(6);
        assertThat(j.get("hit_blocks").asLong()).isEqualTo(2);
        assertThat(j.get("hit_rate").asDouble()).isEqualTo(2.0 / 6);
        assertThat(j.get("lru_hit_rate").asDouble()).isEqualTo(2.0 / 6);
        assertThat(j.get("belady_hit_rate").asDouble()).isEqualTo(3.0 / 6);
        assertThat(r.out()).contains("3 requests, 6 blocks (3 distinct)").contains("1 DRAM + 1 SSD = 2 blocks")
                .containsPattern("lru\\s+2\\s+0\\.3333").containsPattern("belady \\(MIN\\)\\s+3\\s+0\\.5000");
    }

    @Test
    void replay_perRequest_writesOneJsonLinePerRequestInFileOrder() throws IOException {
        Path out = dir.resolve("per-request.jsonl");
        CliRun r = CliRun.of("kvcache", "replay", "--trace", handTrace().toString(), "--dram-blocks", "1",
                "--ssd-blocks", "1", "--policy", "lru", "--per-request", out.toString());

        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(Files.readAllLines(out)).containsExactly("{\"request\": 0, \"hit_blocks\": 0}",
                "{\"request\": 1, \"hit_blocks\": 1}", "{\"request\": 2, \"hit_blocks\": 1}");
    }

    @Test
    void replay_withRoomForEverything_everyPolicyHitsEveryRepeatedPrefix() throws IOException {
        Path t = write("all.jsonl", line(0, List.of(0L, 1L, 2L)) + line(1, List.of(0L, 1L, 3L, 4L))
                + line(2, List.of(0L, 5L)) + line(3, List.of(0L, 1L, 3L, 6L)));
        for (String policy : List.of("lru", "conversation")) {
            CliRun r = CliRun.of("kvcache", "replay", "--trace", t.toString(), "--dram-blocks", "2",
                    "--ssd-blocks", "20", "--policy", policy, "--json");
            assertThat(r.exitCode()).as(r.err()).isZero();
            // 0 + 2 (0 1) + 1 (0) + 3 (0 1 3) = 6 of 13 blocks, the unlimited-cache prefix hits.
            assertThat(lastJson(r).get("hit_blocks").asLong()).as(policy).isEqualTo(6);
            assertThat(lastJson(r).get("belady_hit_rate").asDouble()).isEqualTo(6.0 / 13);
        }
    }

    /** A seeded multi-turn trace: conversations extend their previous chain (minus its last block). */
    private Path conversations(String name, int requests) throws IOException {
        Random r = new Random(11);
        List<List<Long>> open = new ArrayList<>();
        StringBuilder s = new StringBuilder();
        long next = 1;
        for (int i = 0; i < requests; i++) {
            List<Long> chain;
            if (!open.isEmpty() && r.nextInt(3) > 0) {
                int c = r.nextInt(open.size());
                List<Long> prev = open.get(c);
                chain = new ArrayList<>(prev.subList(0, prev.size() - 1));
                for (int k = 1 + r.nextInt(3); k > 0; k--) {
                    chain.add(next++);
                }
                open.set(c, chain);
                if (r.nextInt(5) == 0) {
                    open.remove(c);
                }
            } else {
                chain = new ArrayList<>(List.of(0L));
                for (int k = 1 + r.nextInt(5); k > 0; k--) {
                    chain.add(next++);
                }
                open.add(chain);
            }
            s.append(line(i, chain));
        }
        return write(name, s.toString());
    }

    @Test
    void replay_isOnline_firstHalfOfTheTraceGetsTheSameHitsAsTheFirstHalfOfAFullReplay() throws IOException {
        Path whole = conversations("whole.jsonl", 600);
        List<String> lines = Files.readAllLines(whole);
        Path half = write("half.jsonl", lines.subList(0, 300).stream().collect(Collectors.joining("\n", "", "\n")));
        Path fullOut = dir.resolve("full-hits.jsonl");
        Path halfOut = dir.resolve("half-hits.jsonl");

        CliRun full = CliRun.of("kvcache", "replay", "--trace", whole.toString(), "--dram-blocks", "5",
                "--ssd-blocks", "15", "--per-request", fullOut.toString(), "--json");
        CliRun first = CliRun.of("kvcache", "replay", "--trace", half.toString(), "--dram-blocks", "5",
                "--ssd-blocks", "15", "--per-request", halfOut.toString());

        assertThat(full.exitCode()).as(full.err()).isZero();
        assertThat(first.exitCode()).as(first.err()).isZero();
        assertThat(Files.readAllLines(halfOut)).containsExactlyElementsOf(Files.readAllLines(fullOut).subList(0, 300));
        assertThat(lastJson(full).get("hit_blocks").asLong()).isPositive();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "not json           | {\"hash_ids\": [0, 1]}\\n{oops\\n | line 2: not a JSON object",
            "no hash_ids        | {\"timestamp\": 1}\\n            | line 1: hash_ids must be an array",
            "negative id        | {\"hash_ids\": [0, -4]}\\n       | line 1: hash_ids[1] must be a non-negative integer",
            "fractional id      | {\"hash_ids\": [0.5]}\\n         | line 1: hash_ids[0] must be a non-negative integer",
            "empty chain        | {\"hash_ids\": []}\\n            | line 1: hash_ids must not be empty",
            "negative timestamp | {\"timestamp\": -5, \"hash_ids\": [0]}\\n | line 1: timestamp must be a non-negative number",
            "text timestamp     | {\"timestamp\": \"x\", \"hash_ids\": [0]}\\n | line 1: timestamp must be a non-negative number",
            "no requests        | \\n                              | has no requests"})
    void replay_malformedTrace_namesFileAndLine(String name, String content, String message) throws IOException {
        Path t = write("bad.jsonl", content.replace("\\n", "\n"));
        CliRun r = CliRun.of("kvcache", "replay", "--trace", t.toString(), "--dram-blocks", "1", "--ssd-blocks", "1");

        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains(t.toString()).contains(message).doesNotContain("Exception");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "negative DRAM    | --dram-blocks | -1   | --ssd-blocks  | 4 | lru     | --dram-blocks must be at least 1, got -1",
            "zero SSD         | --dram-blocks | 1    | --ssd-blocks  | 0 | lru     | --ssd-blocks must be at least 1, got 0",
            "unknown policy   | --dram-blocks | 1    | --ssd-blocks  | 1 | arc     | unknown policy 'arc'; known: conversation, lru"})
    void replay_badOptions_exitTwoNamingTheOption(String name, String o1, String v1, String o2, String v2,
                                                   String policy, String message) throws IOException {
        CliRun r = CliRun.of("kvcache", "replay", "--trace", handTrace().toString(), o1, v1, o2, v2,
                "--policy", policy);

        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains(message);
    }

    @Test
    void replay_missingTraceFile_namesIt() {
        Path missing = dir.resolve("nope.jsonl");
        CliRun r = CliRun.of("kvcache", "replay", "--trace", missing.toString(), "--dram-blocks", "1",
                "--ssd-blocks", "1");

        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err()).contains("no such file " + missing);
    }
}
