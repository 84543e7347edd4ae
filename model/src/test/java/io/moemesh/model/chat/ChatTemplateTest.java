package io.moemesh.model.chat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.ModelFormatException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Jinja behaviour the HF templates rely on, and how broken templates fail. */
class ChatTemplateTest {
    private static final List<ChatMessage> CHAT = List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi"),
            ChatMessage.assistant("Hello"));

    private static String render(String template) {
        return ChatTemplate.of(template, Map.of("bos_token", "<s>", "eos_token", "</s>")).render(CHAT, true);
    }

    @Test
    void render_appliesTrimBlocksAndLstripBlocks_likeTransformers() {
        String template = """
                {% for message in messages %}
                    {% if loop.first %}
                [{{ message.role }}]
                    {% endif %}
                {{ message['content'] }}
                {% endfor %}
                """;
        assertThat(render(template)).isEqualTo("[system]\nBe brief.\nHi\nHello\n");
    }

    @Test
    void render_dropsOneTrailingNewlineOfTheSource_butNotOfTheOutput() {
        assertThat(render("{{ bos_token }}\n")).isEqualTo("<s>");
        assertThat(render("{{ 'x\\n' }}")).isEqualTo("x\n");
        assertThat(render("{{ 'x' }}\n\n")).isEqualTo("x\n");
    }

    @Test
    void render_supportsTheExpressionsHfTemplatesUse() {
        String template = "{{ bos_token + messages[0]['role'] }}|{{ loop_missing is defined }}|"
                + "{% for m in messages %}{{ loop.index0 }}{{ m.role[:1] }}{% if not loop.last %},{% endif %}"
                + "{% endfor %}|{{ messages[1:]|length }}|{{ (messages[1]['role'] == 'user') != (1 % 2 == 0) }}|"
                + "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
                + "{{ ns.n }}|{{ messages[0].tool_calls }}|{{ 'a' if add_generation_prompt else 'b' }}|"
                + "{{ eos_token ~ '!' }}|{{ '  x '|trim }}";
        // Jinja prints Python's booleans: False, True
        assertThat(render(template)).isEqualTo("<s>system|False|0s,1u,2a|2|True|3||a|</s>!|x");
    }

    @Test
    void render_supportsPythonStringMethods() {
        ChatTemplate t = ChatTemplate.of("{% set c = messages[0].content %}{{ c.strip() }}|{{ c.lstrip() }}|"
                + "{{ c.rstrip() }}|{{ c.startswith(' <think>') }}|{{ c.strip().endswith(('x', 'd')) }}|"
                + "{{ c.split('</think>')[-1].strip() }}|{{ c.split()|length }}|{{ c.upper().strip() }}|"
                + "{{ c.replace('think', 't') }}|{{ '-'.join(['a', 'b']) }}|{{ c.strip().title() }}", Map.of());
        assertThat(t.render(List.of(ChatMessage.user(" <think>x</think> answered \n")), false))
                .isEqualTo("<think>x</think> answered|<think>x</think> answered \n| <think>x</think> answered|"
                        + "True|True|answered|2|<THINK>X</THINK> ANSWERED| <t>x</t> answered \n|a-b|"
                        + "<Think>X</Think> Answered");
    }

    @Test
    void render_printsMessageContentVerbatim_withoutEvaluatingJinjaInIt() {
        ChatTemplate t = ChatTemplate.of("{{ messages[0].content }}", Map.of());
        assertThat(t.render(List.of(ChatMessage.user("{{ 7 * 6 }} {% if %}")), false))
                .isEqualTo("{{ 7 * 6 }} {% if %}");
    }

    @Test
    void tojson_formatsLikePythonJsonDumps() {
        ChatTemplate t = ChatTemplate.of("{{ tools|tojson }}|{{ tools[0]|tojson(indent=2) }}", Map.of());
        Map<String, Object> tool = new java.util.LinkedHashMap<>();
        tool.put("name", "get_weather");
        tool.put("args", List.of("city", "ünit \"c\"", 3, 1.5, true));
        tool.put("empty", Map.of());
        String out = t.render(List.of(), false, Map.of("tools", List.of(tool)));
        assertThat(out).isEqualTo("[{\"name\": \"get_weather\", \"args\": [\"city\", \"ünit \\\"c\\\"\", 3, 1.5,"
                + " true], \"empty\": {}}]|{\n  \"name\": \"get_weather\",\n  \"args\": [\n    \"city\",\n"
                + "    \"ünit \\\"c\\\"\",\n    3,\n    1.5,\n    true\n  ],\n  \"empty\": {}\n}");
    }

    @Test
    void raiseException_failsTheRender_withTransformersMessage() {
        ChatTemplate t = ChatTemplate.of("a{{ raise_exception('No system role!') }}b", Map.of());
        assertThatThrownBy(() -> t.render(CHAT, false))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessage("TemplateError: No system role!");
    }

    @Test
    void templateWithUnclosedBlock_failsWhenCreated() {
        assertThatThrownBy(() -> ChatTemplate.of("{% for m in messages %}{{ m.content }}", Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageStartingWith("TemplateSyntaxError: ")
                .hasMessageContaining("endfor");
    }

    @Test
    void templateWithUnknownTag_failsWhenCreated() {
        assertThatThrownBy(() -> ChatTemplate.of("{% generation %}x{% endgeneration %}", Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageStartingWith("TemplateSyntaxError: ");
    }

    @Test
    void templateWithUnknownFilter_failsWhenCreated() {
        assertThatThrownBy(() -> ChatTemplate.of("{{ messages|first|frobnicate }}", Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessage("TemplateAssertionError: No filter named 'frobnicate'.");
    }

    @Test
    void filterLikeTextInsideStringsAndComments_isNotMistakenForAFilter() {
        ChatTemplate t = ChatTemplate.of("{# x|nofilter #}{{ '|nofilter' }}{% raw %}{{ y|nofilter }}{% endraw %}",
                Map.of());
        assertThat(t.render(List.of(), false)).isEqualTo("|nofilter{{ y|nofilter }}");
    }

    /** Jinja compiles the whole template first: an expression no branch reaches yet still fails the load. */
    @Test
    void expressionSyntaxError_failsWhenCreated_namingTheExpression() {
        assertThatThrownBy(() -> ChatTemplate.of("{% if false %}{{ messages[0]['role'] + }}{% endif %}", Map.of()))
                .isInstanceOf(ChatTemplateException.class)
                .hasMessageStartingWith("TemplateSyntaxError: cannot parse the expression "
                        + "'messages[0]['role'] +' (line 1)");
    }

    @Test
    void fromTokenizerConfig_isEmpty_whenThereIsNoChatTemplate(@TempDir Path dir) throws Exception {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"bos_token\": \"<s>\"}");
        assertThat(ChatTemplate.fromTokenizerConfig(config)).isEmpty();
    }

    @Test
    void fromTokenizerConfig_picksTheDefaultOfNamedTemplates_andReadsTokenObjects(@TempDir Path dir)
            throws Exception {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, """
                {"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
                 "eos_token": null,
                 "chat_template": [{"name": "tool_use", "template": "tools"},
                                   {"name": "default", "template": "{{ bos_token }}[{{ eos_token }}]"}]}""");
        assertThat(ChatTemplate.fromTokenizerConfig(config).orElseThrow().render(CHAT, false)).isEqualTo("<s>[]");
    }

    /**
     * transformers (PreTrainedTokenizerBase._from_pretrained): chat_template.jinja and
     * additional_chat_templates/*.jinja next to tokenizer_config.json replace its chat_template entry; the entry
     * is used only when there are no such files. Columns: config entry, chat_template.jinja, extra file
     * "name=template", expected render ("-" for none).
     */
    @ParameterizedTest(name = "config={0} file={1} extra={2}")
    @CsvSource(delimiter = '|', nullValues = "-", value = {
        "'config {{ bos_token }}' | -                        | -                  | config <s>",
        "-                        | 'file {{ bos_token }}'   | -                  | file <s>",
        "'config'                 | 'file {{ bos_token }}'   | -                  | file <s>",
        "'config'                 | 'file'                   | 'tool_use=tools'   | file",
        "-                        | -                        | -                  | -",
    })
    void fromTokenizerConfig_prefersChatTemplateJinja_overTheConfigEntry(String entry, String file, String extra,
                                                                         String expected, @TempDir Path dir)
            throws Exception {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"bos_token\": \"<s>\"" + (entry == null ? "" : ", \"chat_template\": \"" + entry + "\"")
                + "}");
        if (file != null) {
            Files.writeString(dir.resolve("chat_template.jinja"), file + "\n");
        }
        if (extra != null) {
            Files.createDirectories(dir.resolve("additional_chat_templates"));
            String[] kv = extra.split("=", 2);
            Files.writeString(dir.resolve("additional_chat_templates").resolve(kv[0] + ".jinja"), kv[1]);
        }
        assertThat(ChatTemplate.fromTokenizerConfig(config).map(t -> t.render(CHAT, false))).isEqualTo(
                java.util.Optional.ofNullable(expected));
    }

    /**
     * transformers reads chat_template.jinja whether or not a tokenizer_config.json is there: a model directory
     * without one still has its template.
     */
    @Test
    void fromDirectory_readsChatTemplateJinja_whenThereIsNoTokenizerConfig(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("chat_template.jinja"), "{% for m in messages %}[{{ m.role }}]{% endfor %}\n");
        assertThat(ChatTemplate.fromDirectory(dir).orElseThrow().render(CHAT, false))
                .isEqualTo("[system][user][assistant]");
    }

    /**
     * transformers reads special_tokens_map.json with or without a tokenizer_config.json, and its entries replace
     * the config's: {@code {{ bos_token }}} of Mixtral's and Llama 3's templates rendered empty when it was not read.
     */
    @Test
    void specialTokensMap_givesTheSpecialTokens_withoutATokenizerConfig(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("chat_template.jinja"), "{{ bos_token }}{% for m in messages %}{{ m.content }}"
                + "{% endfor %}{{ eos_token }}|{{ pad_token }}|\n");
        Files.writeString(dir.resolve("special_tokens_map.json"), """
                {"bos_token": {"content": "<s>", "lstrip": false, "normalized": false, "rstrip": false,
                               "single_word": false},
                 "eos_token": "</s>", "pad_token": null,
                 "additional_special_tokens": ["<x>"]}""");
        assertThat(ChatTemplate.fromDirectory(dir).orElseThrow().render(CHAT, false)).isEqualTo("<s>Be brief.HiHello</s>||");
    }

    @Test
    void specialTokensMap_replacesTheTokenizerConfigsTokens_keyByKey(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": \"<config-bos>\", \"eos_token\": "
                + "\"<config-eos>\", \"chat_template\": \"{{ bos_token }}{{ eos_token }}\"}");
        Files.writeString(dir.resolve("special_tokens_map.json"), "{\"bos_token\": \"<map-bos>\"}");
        assertThat(ChatTemplate.fromDirectory(dir).orElseThrow().render(CHAT, false))
                .isEqualTo("<map-bos><config-eos>");
        assertThat(ChatTemplate.fromTokenizerConfig(dir.resolve("tokenizer_config.json")).orElseThrow()
                .render(CHAT, false)).isEqualTo("<map-bos><config-eos>");
    }

    /**
     * A special token no file defines would be the tokenizer class's default in transformers (LlamaTokenizerFast's
     * "<s>"), which this engine does not know: a template reading it is refused when loaded, not rendered empty.
     * One set to null is transformers' None, undefined to the template.
     */
    @Test
    void templateReadingASpecialTokenNoFileDefines_isRefusedWhenLoaded(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("chat_template.jinja"), "{{ bos_token }}{{ messages[0].content }}");
        assertThatThrownBy(() -> ChatTemplate.fromDirectory(dir)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("reads bos_token").hasMessageContaining("special_tokens_map.json");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"eos_token\": \"</s>\"}");
        assertThatThrownBy(() -> ChatTemplate.fromDirectory(dir)).isInstanceOf(ChatTemplateException.class)
                .hasMessageContaining("reads bos_token")
                .hasMessageContaining("neither tokenizer_config.json nor a special_tokens_map.json");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": null}");
        assertThat(ChatTemplate.fromDirectory(dir).orElseThrow().render(CHAT, false)).isEqualTo("Be brief.");
        Files.writeString(dir.resolve("chat_template.jinja"), "{% set bos_token = '<b>' %}{{ bos_token }}");
        Files.delete(dir.resolve("tokenizer_config.json"));
        assertThat(ChatTemplate.fromDirectory(dir).orElseThrow().render(CHAT, false)).isEqualTo("<b>");
    }

    /**
     * The tree parsed at load is rendered for every conversation, by request threads at once: each render has its
     * own interpreter and context, and Jinjava's nodes keep nothing of a render, so concurrent renders give what
     * one render at a time gives.
     */
    @Test
    void concurrentRenders_ofOneTemplate_giveWhatSequentialRendersGive() throws Exception {
        ChatTemplate t = ChatTemplate.of("{% macro turn(m) %}<{{ m.role }}>{{ m.content|trim }}{% endmacro %}"
                + "{% set ns = namespace(n=0, last='') %}{% for m in messages %}{% set ns.n = ns.n + m.content|length %}"
                + "{% set ns.last = m.role %}{{ turn(m) }}{% if not loop.last %}|{% endif %}{% endfor %}"
                + "#{{ ns.n }}{{ ns.last }}{{ bos_token * k }}", Map.of("bos_token", "<s>"));
        int threads = 8;
        int rounds = 200;
        List<List<String>> expected = new java.util.ArrayList<>();
        for (int i = 0; i < threads; i++) {
            List<String> outputs = new java.util.ArrayList<>();
            for (int r = 0; r < rounds; r++) {
                outputs.add(t.render(conversation(i, r), r % 2 == 0, Map.of("k", r % 3)));
            }
            expected.add(outputs);
        }
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(threads);
        try {
            java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(threads);
            List<java.util.concurrent.Future<List<String>>> results = new java.util.ArrayList<>();
            for (int i = 0; i < threads; i++) {
                int thread = i;
                results.add(pool.submit(() -> {
                    start.await();
                    List<String> outputs = new java.util.ArrayList<>();
                    for (int r = 0; r < rounds; r++) {
                        outputs.add(t.render(conversation(thread, r), r % 2 == 0, Map.of("k", r % 3)));
                    }
                    return outputs;
                }));
            }
            for (int i = 0; i < threads; i++) {
                assertThat(results.get(i).get()).as("thread " + i).isEqualTo(expected.get(i));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static List<ChatMessage> conversation(int thread, int round) {
        List<ChatMessage> out = new java.util.ArrayList<>();
        for (int m = 0; m <= (thread + round) % 5; m++) {
            out.add(m % 2 == 0 ? ChatMessage.user(" t" + thread + "r" + round + "m" + m + " ")
                    : ChatMessage.assistant("a" + "x".repeat(m + thread)));
        }
        return out;
    }

    @Test
    void fromDirectory_isEmpty_withNeitherATemplateFileNorATokenizerConfig(@TempDir Path dir) {
        assertThat(ChatTemplate.fromDirectory(dir)).isEmpty();
    }

    @Test
    void fromDirectory_usesTokenizerConfig_whenThereIsOne(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": \"<s>\"}");
        Files.writeString(dir.resolve("chat_template.jinja"), "file {{ bos_token }}");
        assertThat(ChatTemplate.fromDirectory(dir).orElseThrow().render(CHAT, false)).isEqualTo("file <s>");
    }

    @Test
    void fromTokenizerConfig_fails_whenOnlyAdditionalTemplateFilesExist(@TempDir Path dir) throws Exception {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"chat_template\": \"config\"}");
        Files.createDirectories(dir.resolve("additional_chat_templates"));
        Files.writeString(dir.resolve("additional_chat_templates/rag.jinja"), "x");
        assertThatThrownBy(() -> ChatTemplate.fromTokenizerConfig(config))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("additional_chat_templates").hasMessageContaining("[rag]")
                .hasMessageContaining("no chat_template.jinja");
    }

    @Test
    void fromTokenizerConfig_fails_whenNamedTemplatesHaveNoDefault(@TempDir Path dir) throws Exception {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"chat_template\": [{\"name\": \"rag\", \"template\": \"x\"}]}");
        assertThatThrownBy(() -> ChatTemplate.fromTokenizerConfig(config))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(config.toString())
                .hasMessageContaining("default");
    }

    @Test
    void fromTokenizerConfig_failsNamingTheFile_whenItIsMissingOrMalformed(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("tokenizer_config.json");
        assertThatThrownBy(() -> ChatTemplate.fromTokenizerConfig(missing))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(missing.toString());
        Path broken = dir.resolve("broken.json");
        Files.writeString(broken, "{\"chat_template\": ");
        assertThatThrownBy(() -> ChatTemplate.fromTokenizerConfig(broken))
                .isInstanceOf(ModelFormatException.class)
                .hasMessageStartingWith(broken + ": malformed JSON");
    }

    @Test
    void strftimeNow_formatsLikePython() {
        LocalDateTime t = LocalDateTime.of(2024, 7, 4, 9, 5, 3);
        assertThat(TemplateFunctions.strftime(t, "%d %b %Y, %A %H:%M:%S %p %-d/%-m %%"))
                .isEqualTo("04 Jul 2024, Thursday 09:05:03 AM 4/7 %");
        assertThat(ChatTemplate.of("{{ strftime_now('%Y') }}", Map.of()).render(List.of(), false))
                .isEqualTo(Integer.toString(LocalDateTime.now().getYear()));
    }
}
