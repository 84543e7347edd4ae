package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.chat.ChatMessage;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.chat.ChatTemplateException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * The chatTemplate bean finds the model's template where transformers does: chat_template.jinja, also in a model
 * directory without tokenizer_config.json (docs/supported-formats.md: "Chat templates from chat_template.jinja
 * (preferred, as transformers does) or tokenizer_config.json"); no bean without either; a template this engine
 * cannot render as Jinja does fails the start.
 */
class ChatTemplateBeanTest {
    @TempDir
    Path modelDir;

    private ChatTemplate bean() {
        GatewayProperties p = new Binder(new MapConfigurationPropertySource(Map.of("moemesh.gateway.model-dir",
                modelDir.toString()))).bindOrCreate("moemesh.gateway", GatewayProperties.class);
        return new GatewayConfiguration().chatTemplate(p);
    }

    @Test
    void chatTemplateJinja_withoutTokenizerConfig_isTheModelsTemplate() throws Exception {
        Files.writeString(modelDir.resolve("chat_template.jinja"), "{% for m in messages %}<{{ m.role }}>"
                + "{{ m.content }}{% endfor %}\n");
        assertThat(bean().render(List.of(ChatMessage.user("hi")), false)).isEqualTo("<user>hi");
    }

    @Test
    void neitherTemplateFileNorTokenizerConfig_isNoTemplate() {
        assertThat(bean()).isNull();
    }

    @Test
    void templateThisEngineCannotRender_failsTheStart() throws Exception {
        Files.writeString(modelDir.resolve("chat_template.jinja"), "{{ {'a': {'b': 1}}.a.b }}");
        assertThatThrownBy(this::bean).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("cannot parse the expression");
    }
}
