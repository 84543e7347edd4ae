package io.moemesh.model.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

class PromptBosTest {
    private static final Path TOKENIZER_JSON = TestModels.dir(TestModels.MIXTRAL).resolve("tokenizer.json");
    private static final Tokenizer TOKENIZER = Tokenizer.load(TOKENIZER_JSON);
    private static final int S = TOKENIZER.tokenId("<s>").orElseThrow();
    private static final Optional<Integer> CONFIG_BOS = Optional.of(77);

    @TempDir
    Path dir;

    /**
     * @param tokenizerConfig tokenizer_config.json's content, "-" for no file
     * @param postProcessor   tokenizer.json's post_processor, "-" to keep the file's (none)
     * @param expected        the token a prompt starts with: "none", "config" (config.json's bos_token_id) or "<s>"
     */
    @ParameterizedTest(name = "{3}")
    @CsvSource(delimiter = '|', value = {
            "- | - | config | only tokenizer.json and config.json (the bundled models): config.json's bos_token_id",
            "{\"bos_token\": null} | - | none | Qwen2: a tokenizer_config without add_bos_token, no post-processor",
            "{\"add_bos_token\": false, \"bos_token\": \"<s>\"} | - | none | add_bos_token false (OLMoE, GPT-NeoX)",
            "{\"add_bos_token\": true, \"bos_token\": \"<s>\"} | - | <s> | add_bos_token true (Llama, Mixtral)",
            "- | {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, "
                    + "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]} | <s> | a template that starts with <s>",
            "{\"bos_token\": \"<s>\"} | {\"type\": \"ByteLevel\"} | none | a post-processor that adds nothing",
            "{\"bos_token\": \"<s>\"} | {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\", "
                    + "\"trim_offsets\": false}, {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
                    + "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}]} | <s> "
                    + "| Llama 3: a Sequence of ByteLevel and a template that starts with <s>",
            "{\"bos_token\": \"<s>\"} | {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}]} | none "
                    + "| a Sequence whose processors add nothing",
            "- | {\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\", 2], \"cls\": [\"<s>\", 1]} | <s> "
                    + "| a Roberta post-processor adds its cls first",
            "{\"add_bos_token\": false} | {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
                    + "\"<s>\", \"type_id\": 0}}]} | none | add_bos_token false wins over the template",
    })
    void promptStartsWith_whatTransformersTokenizerAdds(String tokenizerConfig, String postProcessor, String expected,
                                                        String why) throws IOException {
        write(tokenizerConfig, postProcessor);
        Optional<Integer> want = switch (expected) {
            case "none" -> Optional.empty();
            case "config" -> CONFIG_BOS;
            default -> Optional.of(S);
        };
        assertThat(PromptBos.of(dir, TOKENIZER, CONFIG_BOS)).as(why).isEqualTo(want);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "{\"add_bos_token\": true, \"bos_token\": \"<nope>\"} | - | tokenizer_config.json: bos_token",
            "- | {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<nope>\"}}]} | post_processor",
    })
    void aTokenOutsideTheVocabulary_isRefusedNamingWhereItIsNamed(String tokenizerConfig, String postProcessor,
                                                                 String where) throws IOException {
        write(tokenizerConfig, postProcessor);
        assertThatThrownBy(() -> PromptBos.of(dir, TOKENIZER, CONFIG_BOS)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(where).hasMessageContaining("<nope>");
    }

    private void write(String tokenizerConfig, String postProcessor) throws IOException {
        JsonMapper json = JsonMapper.builder().build();
        ObjectNode tokenizer = (ObjectNode) json.readTree(Files.readString(TOKENIZER_JSON));
        if (!postProcessor.equals("-")) {
            tokenizer.set("post_processor", json.readTree(postProcessor));
        }
        Files.writeString(dir.resolve("tokenizer.json"), json.writeValueAsString(tokenizer));
        if (!tokenizerConfig.equals("-")) {
            Files.writeString(dir.resolve("tokenizer_config.json"), tokenizerConfig);
        }
    }

    /** The shipped tokenizer families: what a server feeds the model must start as the reference's chat ids do. */
    @ParameterizedTest
    @CsvSource({"llama-style, <s>", "metaspace-style, <s>", "qwen-style, none", "bytelevel-style, config"})
    void shippedTokenizerFamilies_startPromptsAsTheReferenceDoes(String family, String expected) {
        Path d = Path.of("src/test/resources/tokenizers", family);
        Tokenizer t = Tokenizer.load(d.resolve("tokenizer.json"));
        Optional<Integer> want = switch (expected) {
            case "none" -> Optional.empty();
            case "config" -> CONFIG_BOS;
            default -> Optional.of(t.tokenId(expected).orElseThrow());
        };
        assertThat(PromptBos.of(d, t, CONFIG_BOS)).isEqualTo(want);
    }
}
