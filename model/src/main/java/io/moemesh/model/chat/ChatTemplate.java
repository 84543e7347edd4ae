package io.moemesh.model.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.interpret.errorcategory.BasicTemplateErrorCategory;
import com.hubspot.jinjava.tree.Node;
import io.moemesh.model.ModelFormatException;
import io.moemesh.model.tokenizer.TokenizerConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * A Hugging Face chat template (Jinja), rendered like transformers' {@code apply_chat_template(messages,
 * add_generation_prompt=..., tokenize=False)}: the template sees {@code messages} (maps with "role" and
 * "content"), {@code add_generation_prompt}, the special tokens of tokenizer_config.json ({@code bos_token},
 * {@code eos_token}, ...), {@code tools}/{@code documents} as None, and the functions {@code raise_exception} and
 * {@code strftime_now}. Rendering is done by Jinjava configured like Jinja with {@code trim_blocks} and
 * {@code lstrip_blocks}, with Jinja's grammar ({@link JinjaParser}), and Python's truth, equality, {@code str()}
 * and {@code str} methods (JinjaEnvironment). Jinjava has one null for both of Jinja's None and Undefined; here
 * null is Undefined only, and every None the template sees (those variables, a null content, nulls inside the
 * variables, the literals {@code none}/{@code None}) is {@link PyNone}, so that {@code is defined},
 * {@code is none}, {@code default} and {@code ==} tell them apart as Jinja does. As Jinja compiles a template
 * before rendering it, the whole template is parsed when it is loaded, and refused then if it has a syntax error,
 * an unknown filter, test or tag ({@link TemplateCheck}) or a construct Jinjava would still render differently
 * ({@link JinjaDivergences}): a template is rendered as transformers renders it or refused. Instances are
 * immutable and thread-safe.
 */
public final class ChatTemplate {
    private static final Jinjava JINJAVA = JinjaEnvironment.create();
    private static final String TOKENIZER_CONFIG = "tokenizer_config.json";
    private static final String TEMPLATE_FILE = "chat_template.jinja";
    private static final String TEMPLATE_DIR = "additional_chat_templates";

    private final String source;
    private final String body;
    private final Map<String, String> specialTokens;

    private ChatTemplate(String source, Map<String, String> specialTokens) {
        this.source = source;
        this.body = stripOneTrailingNewline(source);
        this.specialTokens = Map.copyOf(specialTokens);
        checkCompiles();
    }

    /**
     * The chat template of a model directory, as transformers' {@code AutoTokenizer.from_pretrained(dir)} loads it:
     * {@link #fromTokenizerConfig} when the directory has a tokenizer_config.json; without one, the template files
     * alone ({@code chat_template.jinja}, {@code additional_chat_templates/}, which transformers reads whether or
     * not a tokenizer_config.json is there), with no special-token variables. Empty when the directory has no
     * template.
     *
     * @throws ModelFormatException  if a file is unreadable or malformed, or templates are listed but none is
     *                               "default"
     * @throws ChatTemplateException if the template does not compile
     */
    public static Optional<ChatTemplate> fromDirectory(Path modelDir) {
        Path config = modelDir.resolve(TOKENIZER_CONFIG);
        if (Files.isRegularFile(config)) {
            return fromTokenizerConfig(config);
        }
        Path dir = modelDir.toAbsolutePath();
        Map<String, String> files = templateFiles(dir);
        if (files.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(of(defaultTemplate(files, dir + ": " + TEMPLATE_DIR + "/", true), Map.of()));
    }

    /**
     * The template saved with a tokenizer_config.json, or empty when there is none. As transformers'
     * {@code PreTrainedTokenizerBase._from_pretrained} loads it: when template files sit next to the config —
     * {@code chat_template.jinja} (named "default") and {@code additional_chat_templates/<name>.jinja} (utils/hub.py's
     * CHAT_TEMPLATE_FILE and CHAT_TEMPLATE_DIR, written by save_pretrained since transformers 4.x) — they replace
     * the config's {@code chat_template} entry altogether ("independent chat template file(s) take priority");
     * otherwise the entry is used. Of named templates, the one named "default" is used. The special tokens
     * always come from tokenizer_config.json.
     *
     * @throws ModelFormatException  if a file is missing, unreadable or malformed, or templates are listed but
     *                               none is "default"
     * @throws ChatTemplateException if the template does not compile
     */
    public static Optional<ChatTemplate> fromTokenizerConfig(Path tokenizerConfigJson) {
        TokenizerConfig config = TokenizerConfig.load(tokenizerConfigJson);
        Path dir = tokenizerConfigJson.toAbsolutePath().getParent();
        Map<String, String> files = templateFiles(dir);
        Map<String, String> templates = files.isEmpty() ? config.chatTemplates() : files;
        if (templates.isEmpty()) {
            return Optional.empty();
        }
        String source = files.isEmpty() ? tokenizerConfigJson + ": chat_template" : dir + ": " + TEMPLATE_DIR + "/";
        return Optional.of(of(defaultTemplate(templates, source, !files.isEmpty()), config.specialTokens()));
    }

    /** The template named "default" of {@code templates} (read from {@code source}). */
    private static String defaultTemplate(Map<String, String> templates, String source, boolean fromFiles) {
        String template = templates.get("default");
        if (template == null) {
            throw new ModelFormatException(source + " lists " + templates.keySet() + " but none is named \"default\""
                    + (fromFiles ? " (no " + TEMPLATE_FILE + ")" : ""));
        }
        return template;
    }

    /** chat_template.jinja as "default" and additional_chat_templates/*.jinja by name; empty when there are none. */
    private static Map<String, String> templateFiles(Path dir) {
        Map<String, String> out = new TreeMap<>();
        Path file = dir.resolve(TEMPLATE_FILE);
        if (Files.exists(file)) {
            out.put("default", readTemplate(file));
        }
        Path extra = dir.resolve(TEMPLATE_DIR);
        if (Files.isDirectory(extra)) {
            try (Stream<Path> list = Files.list(extra)) {
                for (Path p : list.filter(f -> f.getFileName().toString().endsWith(".jinja")).toList()) {
                    String name = p.getFileName().toString();
                    out.put(name.substring(0, name.length() - ".jinja".length()), readTemplate(p));
                }
            } catch (IOException e) {
                throw new ModelFormatException(extra + ": cannot list the chat templates (" + e.getMessage() + ")", e);
            }
        }
        return out;
    }

    private static String readTemplate(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot read the chat template (" + e.getMessage() + ")", e);
        }
    }

    /**
     * A template with the given special-token variables ({@code "bos_token" -> "<s>"}, ...).
     *
     * @throws ChatTemplateException if the template does not compile
     */
    public static ChatTemplate of(String template, Map<String, String> specialTokens) {
        return new ChatTemplate(Objects.requireNonNull(template, "template"), specialTokens);
    }

    /** The Jinja source as given. */
    public String source() {
        return source;
    }

    /**
     * Renders the conversation.
     *
     * @param addGenerationPrompt whether to end with the header of an assistant turn
     * @throws ChatTemplateException       if the template refuses the conversation ({@code raise_exception}, e.g.
     *                                     roles that do not alternate) or Python fails on it (TypeError, ValueError)
     * @throws BrokenChatTemplateException if the template fails on its own (whatever the conversation)
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /**
     * Renders with extra template variables (e.g. {@code tools}, or flags such as {@code enable_thinking}), as
     * {@code apply_chat_template(..., **kwargs)} passes them.
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> variables) {
        Map<String, Object> context = new HashMap<>(TemplateFunctions.FUNCTIONS);
        context.put("tools", PyNone.NONE);
        context.put("documents", PyNone.NONE);
        context.putAll(specialTokens);
        variables.forEach((k, v) -> context.put(k, PyNone.of(v)));
        // Jinja's literals none/None, which Jinjava reads as variable names (so no variable may shadow them)
        context.put("none", PyNone.NONE);
        context.put("None", PyNone.NONE);
        List<Map<String, Object>> list = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", PyNone.of(m.content()));
            list.add(map);
        }
        context.put("messages", list);
        context.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result = JINJAVA.renderForResult(body, context);
        failOnErrors(result.getErrors(), true);
        return result.getOutput();
    }

    /**
     * Parse-time checks, so a broken template fails when the model is loaded rather than on every request: tag
     * structure (Jinjava's parser), constructs Jinjava would render differently, every expression, tag and test
     * ({@link TemplateCheck}), and filter names (Jinja rejects unknown filters at compile time, Jinjava would print
     * nothing).
     */
    private void checkCompiles() {
        JinjavaInterpreter interpreter = JINJAVA.newInterpreter();
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            Node root = interpreter.parse(body);
            failOnErrors(interpreter.getErrors(), false);
            JinjaDivergences.check(body);
            TemplateCheck.check(body, root, JINJAVA.getGlobalContext());
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        for (String filter : FilterNames.in(body)) {
            if (JINJAVA.getGlobalContext().getFilter(filter) == null) {
                throw new ChatTemplateException("TemplateAssertionError: No filter named '" + filter + "'.");
            }
        }
    }

    /**
     * Jinjava collects errors instead of throwing. A {@code raise_exception} call becomes transformers'
     * {@code "TemplateError: <message>"}, a Python error (a TypeError iterating None, tojson of an undefined value)
     * {@code "TypeError: <message>"}: the conversation is refused ({@link ChatTemplateException}). Any fatal error
     * or syntax error (Jinjava reports some, such as an unclosed tag, as warnings) fails too, and so does an
     * attribute Jinjava does not know on one of its own objects (a warning for Jinjava, which renders nothing):
     * Jinja knows attributes Jinjava lacks, such as {@code loop.previtem}, so an unknown one is refused rather than
     * guessed to be undefined. When loading, that refuses the template ({@link ChatTemplateException}); when
     * rendering, it is the template's own failure ({@link BrokenChatTemplateException}), not the conversation's.
     */
    private static void failOnErrors(List<TemplateError> errors, boolean rendering) {
        for (TemplateError e : errors) {
            for (Throwable t = e.getException(); t != null; t = t.getCause()) {
                if (t instanceof TemplateFunctions.RaisedException raised) {
                    throw new ChatTemplateException("TemplateError: " + raised.getMessage());
                }
                if (t instanceof PythonError python) {
                    throw new ChatTemplateException(python.type() + ": " + python.getMessage());
                }
            }
        }
        for (TemplateError e : errors) {
            boolean syntax = e.getReason() == TemplateError.ErrorReason.SYNTAX_ERROR;
            boolean unknownProperty = e.getCategory() == BasicTemplateErrorCategory.UNKNOWN_PROPERTY;
            if (syntax || unknownProperty || e.getSeverity() == TemplateError.ErrorType.FATAL) {
                String line = e.getLineno() > 0 ? " (line " + e.getLineno() + ")" : "";
                String message = (syntax ? "TemplateSyntaxError: " : "TemplateError: ") + e.getMessage() + line;
                throw rendering ? new BrokenChatTemplateException("the chat template failed: " + message,
                        e.getException()) : new ChatTemplateException(message, e.getException());
            }
        }
    }

    /** Jinja's keep_trailing_newline=False: one newline at the very end of the source is not output. */
    private static String stripOneTrailingNewline(String s) {
        if (s.endsWith("\r\n")) {
            return s.substring(0, s.length() - 2);
        }
        if (s.endsWith("\n") || s.endsWith("\r")) {
            return s.substring(0, s.length() - 1);
        }
        return s;
    }
}
