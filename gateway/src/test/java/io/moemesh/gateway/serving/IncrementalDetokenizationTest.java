package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import io.moemesh.model.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * TextAssembler's incremental detokenisation gives, after every token, exactly the text of a whole decode, for every
 * tokenizer family we serve (Metaspace with byte fallback as in Mixtral, byte-level BPE as in Qwen2 and OLMoE): a
 * decoder's context effects (a Metaspace decoder's dropped leading space, byte fallback across tokens) must cancel out.
 */
class IncrementalDetokenizationTest {

    static Stream<Path> tokenizers() {
        Path own = Path.of("../model/src/test/resources/tokenizers");
        return Stream.concat(Stream.of(TestModels.dir(TestModels.MIXTRAL), TestModels.dir(TestModels.QWEN2_MOE)),
                Stream.of("llama-style", "metaspace-style", "bytelevel-style", "qwen-style").map(own::resolve))
                .map(d -> d.resolve("tokenizer.json"));
    }

    /** Random ids, with runs of the ids of multi-byte characters, spaces and newlines, where boundaries matter. */
    private static int[] randomIds(Tokenizer t, Random random, int pieces) {
        String[] words = {"é", "€", "😀", "日本", " the", "\n\n", "  x", " ,", "'s", "ab"};
        return IntStream.range(0, pieces).flatMap(i -> random.nextInt(3) == 0
                ? Arrays.stream(t.encode(words[random.nextInt(words.length)]))
                : IntStream.of(random.nextInt(t.vocabSize()))).toArray();
    }

    @ParameterizedTest
    @MethodSource("tokenizers")
    void textAfterEveryToken_isTheWholeDecode_forEveryTokenizerFamily(Path tokenizerJson) {
        Tokenizer t = Tokenizer.load(tokenizerJson);
        Random random = new Random(11);
        for (int seq = 0; seq < 150; seq++) {
            int[] ids = randomIds(t, random, 1 + random.nextInt(60));
            TextAssembler a = new TextAssembler(t, List.of());
            StringBuilder sent = new StringBuilder();
            for (int k = 1; k <= ids.length; k++) {
                sent.append(a.add(ids[k - 1]));
                assertThat(a.text()).as("%s: %s after %d tokens", tokenizerJson, Arrays.toString(ids), k)
                        .isEqualTo(t.decode(Arrays.copyOf(ids, k), true));
            }
            sent.append(a.finish());
            assertThat(sent.toString()).isEqualTo(t.decode(ids, true));
        }
    }
}
