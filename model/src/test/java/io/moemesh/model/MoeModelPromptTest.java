package io.moemesh.model;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MoeModelPromptTest {
    @TempDir
    Path dir;

    /**
     * Qwen2-MoE checkpoints set config.json's bos_token_id, but their tokenizer adds no BOS (tokenizer_config.json
     * without add_bos_token, bos_token null, no post-processor): transformers' tokenizer(text) starts with the text.
     */
    @Test
    void encodePrompt_addsNoBos_whereTheTokenizerAddsNone_thoughConfigJsonSetsOne() throws IOException {
        Path source = TestModels.dir(TestModels.QWEN2_MOE);
        for (String f : new String[] {"config.json", "tokenizer.json", "model.safetensors"}) {
            Files.copy(source.resolve(f), dir.resolve(f));
        }
        int[] bundled;
        try (MoeModel m = MoeModel.open(source)) {
            bundled = m.encodePrompt("hello world");
            assertThat(bundled[0]).as("the bundled model's convention: config.json's bos_token_id")
                    .isEqualTo(m.config().bosTokenId().orElseThrow());
        }
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": null, \"eos_token\": \"</s>\"}");
        try (MoeModel m = MoeModel.open(dir)) {
            assertThat(m.encodePrompt("hello world")).containsExactly(
                    java.util.Arrays.copyOfRange(bundled, 1, bundled.length));
        }
    }
}
