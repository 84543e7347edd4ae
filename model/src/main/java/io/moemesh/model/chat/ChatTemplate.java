package io.moemesh.model.chat;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.interpret.Context;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.OutputTooBigException;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.interpret.errorcategory.BasicTemplateErrorCategory;
import com.hubspot.jinjava.tree.Node;
import io.moemesh.model.ModelFormatException;
import io.moemesh.model.tokenizer.TokenizerConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * A Hugging Face chat template (Jinja), rendered like transformers' {@code apply_chat_template(messages,
 * add_generation_prompt=..., tokenize=False)}: the template sees {@code messages} (maps with "role" and
 * "content"), {@code add_generation_prompt}, the special tokens ({@code bos_token}, {@code eos_token}, ...),
 * {@code tools}/{@code documents} as None, and the functions {@code raise_exception} and {@code strftime_now}.
 * Rendering is done by Jinjava configured like Jinja with {@code trim_blocks} and {@code lstrip_blocks} (the latter
 * applied to the source by {@link JinjaLstripBlocks}, as Jinjava's strips mid-line too), with Jinja's grammar
 * ({@link JinjaParser}), and Python's truth, equality, arithmetic, {@code str()} and {@code str} methods
 * (JinjaEnvironment). Jinjava has one null for both of Jinja's None and Undefined; here null is Undefined
 * only, and every None the template sees (those variables, a null content, nulls inside the variables, the literals
 * {@code none}/{@code None}) is {@link PyNone}, so that {@code is defined}, {@code is none}, {@code default} and
 * {@code ==} tell them apart as Jinja does. As Jinja compiles a template before rendering it, the whole template is
 * parsed when it is loaded, and refused then if it has a syntax error, an unknown filter, test, function or tag, an
 * expression of literals that fails ({@link TemplateCheck}) or a construct Jinjava would still render differently
 * ({@link JinjaDivergences}): a template is rendered as transformers renders it or refused. The parsed tree is kept
 * and rendered for each conversation with an interpreter of its own (Jinjava's nodes hold no state of a render).
 * Instances are immutable and thread-safe.
 */
public final class ChatTemplate {
    private static final Jinjava JINJAVA = JinjaEnvironment.create();
    /** The settings of the last output limit asked for (most callers always ask for the same one). */
    private static volatile JinjavaConfig lastConfig = JINJAVA.getGlobalConfig();

    private final String source;
    private final Map<String, String> specialTokens;
    private final Node root;

    /**
     * @param specialTokens the special-token variables; a null value is a token set to null (not passed)
     * @param tokensFrom    when the template must not read a special token that no file defines, the files that
     *                      do not define it ("neither X nor Y"); null when the map is all there is
     */
    private ChatTemplate(String source, Map<String, String> specialTokens, String tokensFrom) {
        this.source = source;
        Map<String, String> tokens = new HashMap<>();
        specialTokens.forEach((k, v) -> {
            if (v != null) {
                tokens.put(k, v);
            }
        });
        this.specialTokens = Map.copyOf(tokens);
        int surrogate = loneSurrogate(source);
        if (surrogate >= 0) {
            throw new ChatTemplateException(String.format("TemplateSyntaxError: the template has a lone surrogate "
                    + "\\u%04x at character %d (line %d): no UTF-8 text, and so no prompt, can hold it",
                    (int) source.charAt(surrogate), surrogate, 1 + source.substring(0, surrogate).chars()
                            .filter(c -> c == '\n').count()));
        }
        this.root = compile(JinjaLstripBlocks.apply(stripOneTrailingNewline(source)), specialTokens.keySet(),
                tokensFrom);
    }

    /**
     * The chat template of a model directory, as transformers' {@code AutoTokenizer.from_pretrained(dir)} loads it:
     * {@link #fromTokenizerConfig} when the directory has a tokenizer_config.json; without one, the template files
     * alone ({@code chat_template.jinja}, {@code additional_chat_templates/}, which transformers reads whether or
     * not a tokenizer_config.json is there), with the special tokens of special_tokens_map.json (which transformers
     * also reads in either case). Empty when the directory has no template.
     *
     * @throws ModelFormatException  if a file is unreadable or malformed, or templates are listed but none is
     *                               "default"
     * @throws ChatTemplateException if the template does not compile, or reads a special token ({@code bos_token},
     *                               ...) that no file defines: transformers would take it from the defaults of the
     *                               tokenizer's class, which this engine does not know
     */
    public static Optional<ChatTemplate> fromDirectory(Path modelDir) {
        return ChatTemplateFiles.fromDirectory(modelDir);
    }

    /**
     * The template saved with a tokenizer_config.json, or empty when there is none. As transformers'
     * {@code PreTrainedTokenizerBase._from_pretrained} loads it: when template files sit next to the config —
     * {@code chat_template.jinja} (named "default") and {@code additional_chat_templates/<name>.jinja} (utils/hub.py's
     * CHAT_TEMPLATE_FILE and CHAT_TEMPLATE_DIR, written by save_pretrained since transformers 4.x) — they replace
     * the config's {@code chat_template} entry altogether ("independent chat template file(s) take priority");
     * otherwise the entry is used. Of named templates, the one named "default" is used. The special tokens are the
     * config's, each replaced by special_tokens_map.json's when that file, next to it, sets it.
     *
     * @throws ModelFormatException  if a file is missing, unreadable or malformed, or templates are listed but
     *                               none is "default"
     * @throws ChatTemplateException if the template does not compile, or reads a special token neither file defines
     */
    public static Optional<ChatTemplate> fromTokenizerConfig(Path tokenizerConfigJson) {
        return ChatTemplateFiles.fromTokenizerConfig(tokenizerConfigJson);
    }

    /**
     * A template with the given special-token variables ({@code "bos_token" -> "<s>"}, ...); any other is
     * undefined to the template.
     *
     * @throws ChatTemplateException if the template does not compile
     */
    public static ChatTemplate of(String template, Map<String, String> specialTokens) {
        return new ChatTemplate(Objects.requireNonNull(template, "template"), specialTokens, null);
    }

    /**
     * A template read from model files, which must define every special token it reads ({@code tokensFrom}: the
     * files, "neither X nor Y", for the message).
     */
    static ChatTemplate load(String template, Map<String, String> specialTokens, String tokensFrom) {
        return new ChatTemplate(template, specialTokens, tokensFrom);
    }

    /** The Jinja source as given. */
    public String source() {
        return source;
    }

    /**
     * Renders the conversation, with no output limit but this engine's ({@value OutputBudget#MAX_OUTPUT}
     * characters).
     *
     * @param addGenerationPrompt whether to end with the header of an assistant turn
     * @throws ChatTemplateException         if the template refuses the conversation ({@code raise_exception},
     *                                       e.g. roles that do not alternate) or Python fails on its values
     *                                       (TypeError, ValueError, ZeroDivisionError, UndefinedError)
     * @throws RenderedChatTooLongException  if the output (or a value the template builds) would pass the limit
     * @throws BrokenChatTemplateException   if the template fails on its own (whatever the conversation)
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /**
     * Renders with extra template variables (e.g. {@code tools}, or flags such as {@code enable_thinking}), as
     * {@code apply_chat_template(..., **kwargs)} passes them.
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> variables) {
        return render(messages, addGenerationPrompt, variables, OutputBudget.MAX_OUTPUT);
    }

    /**
     * Renders with at most {@code maxOutputChars} characters of output (and of any one value the template builds:
     * a repetition, a printed list), at most {@value OutputBudget#MAX_OUTPUT}: a caller that will refuse a longer
     * prompt anyway (the gateway, its prompt's byte budget) passes that bound, so a template repeating the request's
     * text by the request's count fails before the memory is taken.
     *
     * @throws RenderedChatTooLongException if the output or a value would pass {@code maxOutputChars}
     * @throws IllegalArgumentException     if {@code maxOutputChars} is less than 1
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> variables,
                         long maxOutputChars) {
        if (maxOutputChars < 1) {
            throw new IllegalArgumentException("maxOutputChars must be at least 1, got " + maxOutputChars);
        }
        long limit = Math.min(maxOutputChars, OutputBudget.MAX_OUTPUT);
        JinjavaConfig config = config(limit);
        Context scope = new Context(JINJAVA.newInterpreter().getContext(), bindings(messages, addGenerationPrompt,
                variables), config.getDisabled());
        JinjavaInterpreter interpreter = config.getInterpreterFactory().newInstance(JINJAVA, scope, config);
        String output = null;
        RuntimeException thrown = null;
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            output = interpreter.render(root);
        } catch (RuntimeException e) {
            thrown = e;
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        List<TemplateError> errors = interpreter.getErrorsCopy();
        failOnRenderErrors(errors, thrown, limit);
        int surrogate = loneSurrogate(output);
        if (surrogate >= 0) {
            throw loneSurrogateInOutput(output, surrogate, messages, variables);
        }
        return output;
    }

    private Map<String, Object> bindings(List<ChatMessage> messages, boolean addGenerationPrompt,
                                         Map<String, ?> variables) {
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
        return context;
    }

    private static JinjavaConfig config(long limit) {
        JinjavaConfig c = lastConfig;
        if (c.getMaxOutputSize() != limit) {
            c = JinjaEnvironment.config(limit, JINJAVA.getGlobalConfig().getObjectMapper());
            lastConfig = c;
        }
        return c;
    }

    /**
     * Parses the template and runs the load-time checks, so a broken template fails when the model is loaded rather
     * than on every request: tag structure (Jinjava's parser), constructs Jinjava would render differently, every
     * expression, tag, filter, test and function ({@link TemplateCheck}), and the special tokens it reads.
     *
     * @param defined    the special tokens the files define (with a null value too)
     * @param tokensFrom where they were read; null when no check of them is due
     */
    private static Node compile(String body, Set<String> defined, String tokensFrom) {
        JinjavaInterpreter interpreter = JINJAVA.newInterpreter();
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            Node root = interpreter.parse(body);
            for (TemplateError e : interpreter.getErrors()) {
                if (e.getReason() == TemplateError.ErrorReason.SYNTAX_ERROR
                        || e.getSeverity() == TemplateError.ErrorType.FATAL) {
                    String line = e.getLineno() > 0 ? " (line " + e.getLineno() + ")" : "";
                    throw new ChatTemplateException("TemplateSyntaxError: " + e.getMessage() + line, e.getException());
                }
            }
            JinjaDivergences.check(body);
            Set<String> read = TemplateCheck.check(body, root, interpreter);
            if (tokensFrom != null) {
                for (String token : TokenizerConfig.specialTokenKeys()) {
                    if (read.contains(token) && !defined.contains(token)) {
                        throw new ChatTemplateException("TemplateError: the template reads " + token + ", which "
                                + tokensFrom + " defines: transformers would take it from the defaults of the "
                                + "tokenizer's class, which this engine does not know (set it in "
                                + ChatTemplateFiles.SPECIAL_TOKENS_MAP + ", or to null for none)");
                    }
                }
            }
            return root;
        } finally {
            JinjavaInterpreter.popCurrent();
        }
    }

    /**
     * Jinjava collects errors instead of throwing; they are told apart by whose fault they are. A
     * {@code raise_exception} call becomes transformers' {@code "TemplateError: <message>"}, a Python error on the
     * values (a TypeError iterating None or adding a str to an int, tojson of an undefined value, a
     * ZeroDivisionError) {@code "<type>: <message>"}: the conversation is refused ({@link ChatTemplateException}).
     * Output (or a value built) over the limit is the conversation's too ({@link RenderedChatTooLongException}).
     * Anything else that fails — a syntax or fatal error of Jinjava's, an attribute Jinjava does not know on one of
     * its own objects (a warning for Jinjava, which renders nothing: Jinja knows attributes Jinjava lacks, such as
     * {@code loop.previtem}, so an unknown one is refused rather than guessed to be undefined) — is the template's
     * own failure ({@link BrokenChatTemplateException}), not the conversation's.
     */
    private static void failOnRenderErrors(List<TemplateError> errors, RuntimeException thrown, long limit) {
        // the conversation's errors first, the first one that happened (Jinjava renders on after an error: what
        // fails after it may be its consequence)
        for (TemplateError e : errors) {
            if (e.getReason() == TemplateError.ErrorReason.OUTPUT_TOO_BIG) {
                throw new RenderedChatTooLongException(limit);
            }
            failIfTheConversations(e.getException(), limit);
        }
        failIfTheConversations(thrown, limit);
        for (TemplateError e : errors) {
            boolean syntax = e.getReason() == TemplateError.ErrorReason.SYNTAX_ERROR;
            boolean unknownProperty = e.getCategory() == BasicTemplateErrorCategory.UNKNOWN_PROPERTY;
            if (syntax || unknownProperty || e.getSeverity() == TemplateError.ErrorType.FATAL) {
                String line = e.getLineno() > 0 ? " (line " + e.getLineno() + ")" : "";
                String message = (syntax ? "TemplateSyntaxError: " : "TemplateError: ") + e.getMessage() + line;
                throw new BrokenChatTemplateException("the chat template failed: " + message, e.getException());
            }
        }
        if (thrown != null) {
            throw new BrokenChatTemplateException("the chat template failed: " + thrown, thrown);
        }
    }

    /** Throws the conversation's error when {@code cause} (or one of its causes) is one. */
    private static void failIfTheConversations(Throwable cause, long limit) {
        for (Throwable t = cause; t != null; t = t.getCause()) {
            switch (t) {
                case TemplateFunctions.RaisedException raised ->
                        throw new ChatTemplateException("TemplateError: " + raised.getMessage());
                case PythonError python -> throw new ChatTemplateException(python.type() + ": " + python.getMessage());
                case OutputTooBigException big -> throw new RenderedChatTooLongException(limit);
                default -> {
                }
            }
        }
    }

    /**
     * A lone surrogate in the output, which no tokenizer accepts: the conversation's fault when one of its strings
     * has one (a caller that does not check its input), else the template's (it cannot come from its literals,
     * refused at load, so from a filter of Jinjava's that cuts text by UTF-16 unit).
     */
    private static RuntimeException loneSurrogateInOutput(String output, int at, List<ChatMessage> messages,
                                                          Map<String, ?> variables) {
        String what = String.format("a lone surrogate \\u%04x", (int) output.charAt(at));
        for (int i = 0; i < messages.size(); i++) {
            if (loneSurrogate(messages.get(i).role()) >= 0 || loneSurrogate(messages.get(i).content()) >= 0) {
                return new ChatTemplateException("ValueError: message " + i + " has " + what
                        + ", which no UTF-8 text can hold");
            }
        }
        for (Map.Entry<String, ?> v : variables.entrySet()) {
            if (hasLoneSurrogate(v.getValue())) {
                return new ChatTemplateException("ValueError: the variable " + v.getKey() + " has " + what
                        + ", which no UTF-8 text can hold");
            }
        }
        return new BrokenChatTemplateException("the chat template failed: its output has " + what + " at character "
                + at + ", which no tokenizer accepts, though the conversation has none", null);
    }

    private static boolean hasLoneSurrogate(Object value) {
        return switch (value) {
            case CharSequence s -> loneSurrogate(s.toString()) >= 0;
            case Map<?, ?> m -> m.keySet().stream().anyMatch(ChatTemplate::hasLoneSurrogate)
                    || m.values().stream().anyMatch(ChatTemplate::hasLoneSurrogate);
            case Collection<?> c -> c.stream().anyMatch(ChatTemplate::hasLoneSurrogate);
            case null, default -> false;
        };
    }

    /** The index of the first surrogate not part of a pair, or -1. */
    static int loneSurrogate(String s) {
        if (s == null) {
            return -1;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                return i;
            }
        }
        return -1;
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
