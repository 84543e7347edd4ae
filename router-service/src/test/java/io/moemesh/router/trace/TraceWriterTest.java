package io.moemesh.router.trace;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class TraceWriterTest {

    /** A random trace: {@code tokens} tokens with keys fitting {@code format}, some layers missing. */
    static RouteTrace randomTrace(long seed, int tokens, int layers, int experts, int topK, TraceFormat format) {
        Random random = new Random(seed);
        List<TokenRoute> routes = new ArrayList<>();
        for (int t = 0; t < tokens; t++) {
            int[][] e = new int[layers][];
            float[][] w = new float[layers][];
            for (int l = 0; l < layers; l++) {
                if (t > 0 && random.nextInt(10) == 0) {
                    continue;
                }
                List<Integer> ids = new ArrayList<>();
                for (int i = 0; i < experts; i++) {
                    ids.add(i);
                }
                java.util.Collections.shuffle(ids, random);
                e[l] = ids.subList(0, topK).stream().mapToInt(Integer::intValue).toArray();
                w[l] = new float[topK];
                for (int i = 0; i < topK; i++) {
                    w[l][i] = random.nextFloat();
                }
            }
            for (int l = 0; l < layers; l++) {
                if (e[l] != null) {
                    break;
                }
                if (l == layers - 1) {
                    e[0] = new int[topK];
                    for (int i = 0; i < topK; i++) {
                        e[0][i] = i;
                    }
                    w[0] = new float[topK];
                }
            }
            String key = switch (format) {
                case FLAME_PREFILL_CSV -> Integer.toString(t);
                case FLAME_DECODE_CSV -> (t / 4) + ":" + (t % 4);
                case MIXTRAL_JSONL -> (t / 5) + ":" + (t % 5);
            };
            routes.add(new TokenRoute(key, format == TraceFormat.MIXTRAL_JSONL ? -1 : random.nextInt(50_000), e, w));
        }
        return new RouteTrace("random", 2, layers, experts, topK, routes);
    }

    @Property(tries = 30)
    void writtenTrace_readsBackTheSameTokensAndRoutes(@ForAll long seed, @ForAll @IntRange(min = 1, max = 30) int tokens,
                                                       @ForAll @IntRange(min = 1, max = 6) int layers,
                                                       @ForAll TraceFormat format) throws IOException {
        RouteTrace trace = randomTrace(seed, tokens, layers, 16, 3, format);
        Path file = Files.createTempFile("trace", format.csv() ? ".csv" : ".jsonl");
        try {
            TraceWriter.write(trace, format, file);
            RouteTrace back = TraceReader.read(file, 16);

            assertThat(TraceReader.detect(file)).isEqualTo(format);
            assertThat(back.topK()).isEqualTo(3);
            assertThat(back.tokens()).hasSize(tokens);
            // the file holds only the layers some token has; they always include the first layer (see randomTrace)
            for (int t = 0; t < tokens; t++) {
                TokenRoute a = trace.tokens().get(t);
                TokenRoute b = back.tokens().get(t);
                assertThat(b.key()).isEqualTo(a.key());
                assertThat(b.tokenId()).isEqualTo(a.tokenId());
                for (int l = 0; l < back.layers(); l++) {
                    int original = back.layerNumber(l) - trace.firstLayer();
                    assertThat(b.experts()[l]).isEqualTo(a.experts()[original]);
                    assertThat(b.weights()[l]).isEqualTo(a.weights()[original]);
                }
            }
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    void keyNotFittingTheFormat_refused() throws IOException {
        RouteTrace trace = randomTrace(1, 2, 2, 8, 2, TraceFormat.FLAME_PREFILL_CSV);
        Path file = Files.createTempFile("trace", ".jsonl");
        try {
            assertThatThrownBy(() -> TraceWriter.write(trace, TraceFormat.MIXTRAL_JSONL, file))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("token key '0' does not fit MIXTRAL_JSONL (needs <problem_id>:<token_idx>)");
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    void csvWithoutTokenIds_refused() throws IOException {
        RouteTrace trace = randomTrace(1, 2, 2, 8, 2, TraceFormat.MIXTRAL_JSONL);
        Path file = Files.createTempFile("trace", ".csv");
        try {
            assertThatThrownBy(() -> TraceWriter.write(trace, TraceFormat.FLAME_DECODE_CSV, file))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("token 0:0 has no token id; FLAME_DECODE_CSV needs one");
        } catch (UncheckedIOException e) {
            throw e;
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
