package io.moemesh.e2e.docs;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The relative links of the project's markdown files and whether each resolves: the file (or directory) exists and
 * its {@code #anchor}, if any, is a heading of that file under GitHub's rules (github-slugger: the heading's text
 * lowercased, every character but letters, digits, marks, spaces, {@code -} and {@code _} dropped, spaces turned
 * into {@code -}, a repeated slug suffixed {@code -1}, {@code -2}, …) or an {@code <a name|id="…">}. Links in fenced
 * blocks and code spans are not links; absolute URLs are not checked.
 */
final class MarkdownLinks {
    private static final Pattern LINK =
            Pattern.compile("(?<!\\\\)!?\\[((?:[^\\[\\]]|\\[[^\\]]*\\])*)\\]\\(\\s*<?([^)\\s>]*)>?(?:\\s+\"[^\"]*\")?\\s*\\)");
    private static final Pattern HEADING = Pattern.compile("^\\s{0,3}(#{1,6})\\s+(.*?)\\s*#*\\s*$");
    private static final Pattern HTML_ANCHOR = Pattern.compile("<a\\s+(?:name|id)=\"([^\"]+)\"", Pattern.CASE_INSENSITIVE);
    private static final Pattern FENCE = Pattern.compile("^\\s{0,3}(`{3,}|~{3,})");
    private static final Pattern CODE_SPAN = Pattern.compile("(`+)(.+?)\\1");

    /** A link that does not resolve: where it is and why. */
    record Broken(Path file, int line, String target, String reason) {
        @Override
        public String toString() {
            return file + ":" + line + ": " + target + " (" + reason + ")";
        }
    }

    private final Map<Path, Set<String>> anchors = new HashMap<>();

    /** The broken links of {@code files}. */
    List<Broken> check(List<Path> files) {
        List<Broken> broken = new ArrayList<>();
        for (Path file : files) {
            List<String> lines = read(file);
            forEachTextLine(lines, (n, line) -> {
                Matcher m = LINK.matcher(CODE_SPAN.matcher(line).replaceAll(r -> " ".repeat(r.group().length())));
                while (m.find()) {
                    String target = m.group(2);
                    if (target.isEmpty() || target.matches("^[a-zA-Z][a-zA-Z0-9+.-]*:.*")) {
                        continue; // http:, https:, mailto:
                    }
                    String reason = resolve(file, target);
                    if (reason != null) {
                        broken.add(new Broken(file, n, target, reason));
                    }
                }
            });
        }
        return broken;
    }

    private String resolve(Path from, String target) {
        int hash = target.indexOf('#');
        String pathPart = hash < 0 ? target : target.substring(0, hash);
        String anchor = hash < 0 ? null : URLDecoder.decode(target.substring(hash + 1), StandardCharsets.UTF_8);
        Path to = pathPart.isEmpty() ? from
                : from.getParent().resolve(URLDecoder.decode(pathPart, StandardCharsets.UTF_8)).normalize();
        if (!Files.exists(to)) {
            return "no such file " + to;
        }
        if (anchor == null || anchor.isEmpty() || !to.toString().endsWith(".md")) {
            return null;
        }
        return anchorsOf(to).contains(anchor) ? null : "no heading #" + anchor + " in " + to.getFileName();
    }

    private Set<String> anchorsOf(Path file) {
        return anchors.computeIfAbsent(file, f -> {
            Set<String> found = new HashSet<>();
            Map<String, Integer> seen = new HashMap<>();
            forEachTextLine(read(f), (n, line) -> {
                Matcher h = HEADING.matcher(line);
                if (h.matches()) {
                    String s = slug(h.group(2));
                    int k = seen.merge(s, 1, Integer::sum) - 1;
                    found.add(k == 0 ? s : s + "-" + k);
                }
                Matcher a = HTML_ANCHOR.matcher(line);
                while (a.find()) {
                    found.add(a.group(1));
                }
            });
            return found;
        });
    }

    /** GitHub's heading slug (github-slugger), after dropping a heading's markdown: link targets, tags, code ticks, emphasis. */
    static String slug(String heading) {
        String text = heading.replaceAll("!?\\[([^\\]]*)\\]\\([^)]*\\)", "$1").replaceAll("<[^>]+>", "")
                .replace("`", "").replaceAll("(\\*\\*|__|\\*)", "");
        StringBuilder out = new StringBuilder();
        text.strip().toLowerCase(java.util.Locale.ROOT).codePoints().forEach(c -> {
            int type = Character.getType(c);
            boolean letterDigitMark = Character.isLetterOrDigit(c) || type == Character.NON_SPACING_MARK
                    || type == Character.COMBINING_SPACING_MARK || type == Character.ENCLOSING_MARK
                    || type == Character.LETTER_NUMBER || type == Character.OTHER_NUMBER;
            if (letterDigitMark || c == '-' || c == '_') {
                out.appendCodePoint(c);
            } else if (c == ' ') {
                out.append('-');
            }
        });
        return out.toString();
    }

    private interface LineVisitor {
        void visit(int number, String line);
    }

    /** Visits the lines outside fenced code blocks. */
    private static void forEachTextLine(List<String> lines, LineVisitor visitor) {
        String fence = null;
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            Matcher m = FENCE.matcher(line);
            if (fence != null) {
                if (m.find() && m.group(1).charAt(0) == fence.charAt(0) && m.group(1).length() >= fence.length()) {
                    fence = null;
                }
                continue;
            }
            if (m.find()) {
                fence = m.group(1);
                continue;
            }
            visitor.visit(i + 1, line);
        }
    }

    private static List<String> read(Path file) {
        try {
            return Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
