package io.moemesh.model.chat;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Constructs that Jinjava parses without error but renders differently from Jinja
 * (https://jinja.palletsprojects.com/en/stable/templates/), refused when a template is loaded so that a chat
 * template is either rendered as transformers renders it or refused, never silently rendered otherwise:
 * <ul>
 *   <li>a loop filter {@code {% for m in messages if cond %}} (Jinjava ignores the condition);</li>
 *   <li>{@code {% for %}…{% else %}…{% endfor %}} (Jinjava never renders the else branch);</li>
 *   <li>{@code loop.previtem}, {@code loop.nextitem}, {@code loop.changed(...)}, which Jinjava's loop object
 *       lacks (it would render them as nothing), and {@code loop.counter}, {@code loop.revcounter},
 *       {@code loop.continued}, which only Jinjava's has (Jinja renders them as undefined). Any other attribute
 *       Jinjava does not know fails the render ({@link ChatTemplate}).</li>
 * </ul>
 * String literals are blanked before matching, so text inside quotes never triggers a refusal.
 */
final class JinjaDivergences {
    private static final Pattern TAG = Pattern.compile("\\{#.*?#\\}|\\{%(.*?)%\\}|\\{\\{(.*?)\\}\\}", Pattern.DOTALL);
    private static final Pattern STRING = Pattern.compile("'(?:[^'\\\\]|\\\\.)*'|\"(?:[^\"\\\\]|\\\\.)*\"");
    private static final Pattern FOR_IF = Pattern.compile("^for\\s.+\\sin\\s.+\\sif\\s");
    private static final Pattern LOOP_ATTRIBUTE =
            Pattern.compile("\\bloop\\s*\\.\\s*(previtem|nextitem|changed|counter|revcounter|continued)\\b");
    private static final Pattern BLOCK = Pattern.compile("^(for|if|macro|call|filter|set|raw|block)\\b|^(end\\w+|else)\\b");

    private JinjaDivergences() {
    }

    /** @throws ChatTemplateException naming the first construct Jinjava would render differently */
    static void check(String template) {
        Deque<String> blocks = new ArrayDeque<>();
        Matcher m = TAG.matcher(template);
        while (m.find()) {
            boolean statement = m.group(1) != null;
            String raw = statement ? m.group(1) : m.group(2);
            if (raw == null) {
                continue; // a comment
            }
            String inner = STRING.matcher(raw).replaceAll("''").replaceAll("^[-+]|[-+]$", "").strip();
            Matcher loop = LOOP_ATTRIBUTE.matcher(inner);
            if (loop.find()) {
                refuse(template, m, "loop." + loop.group(1)
                        + " (not an attribute of this engine's loop, or only of it)");
            }
            if (!statement) {
                continue;
            }
            if (FOR_IF.matcher(inner).find()) {
                refuse(template, m, "a loop filter 'for ... in ... if ...' (use an if inside the loop)");
            }
            Matcher b = BLOCK.matcher(inner);
            if (!b.find()) {
                continue;
            }
            if (b.group(1) != null) {
                // {% set x = ... %} has no end tag; only the block form {% set x %}…{% endset %} does
                if (!b.group(1).equals("set") || !inner.contains("=")) {
                    blocks.push(b.group(1));
                }
            } else if (b.group(2).equals("else")) {
                if ("for".equals(blocks.peek())) {
                    refuse(template, m, "'{% for %}…{% else %}' (an else branch of a loop)");
                }
            } else if (!blocks.isEmpty()) {
                blocks.pop();
            }
        }
    }

    private static void refuse(String template, Matcher m, String what) {
        int line = 1 + (int) template.substring(0, m.start()).chars().filter(c -> c == '\n').count();
        throw new ChatTemplateException("TemplateSyntaxError: unsupported construct " + what + ", which this "
                + "engine's Jinja would render differently from Jinja: " + m.group().strip() + " (line " + line + ")");
    }
}
