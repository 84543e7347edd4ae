package io.moemesh.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;
import picocli.CommandLine.Model.UsageMessageSpec;

/**
 * Every command's help renders as written: picocli formats descriptions as {@code String.format} patterns, so a bare
 * percent sign ("goal ≥ 80% of …") made it print a warning on stderr and the raw text with literal {@code %n}.
 */
class HelpTextTest {

    @Test
    void everyCommandsHelp_rendersWithoutPicocliWarnings() {
        List<CommandLine> all = new ArrayList<>();
        collect(Main.commandLine(), all);
        assertThat(all).hasSizeGreaterThan(10);
        PrintStream saved = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        List<String> usages = new ArrayList<>();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            for (CommandLine c : all) {
                usages.add(c.getUsageMessage(CommandLine.Help.Ansi.OFF));
            }
        } finally {
            System.setErr(saved);
        }
        assertThat(err.toString(StandardCharsets.UTF_8)).doesNotContain("picocli WARN");
        assertThat(usages).noneMatch(u -> u.contains("%n"));
    }

    /**
     * The rule itself, independent of where picocli's warnings go (its tracer keeps the System.err it saw when
     * CommandLine was first loaded, so in a full run they may never reach a buffer this test installs): every text
     * picocli formats with {@code String.format}, after its variable substitution, must be a valid pattern.
     */
    @Test
    void everyTextPicocliFormats_isAValidFormatPattern() {
        List<CommandLine> all = new ArrayList<>();
        collect(Main.commandLine(), all);
        List<String> checked = new ArrayList<>();
        SoftAssertions soft = new SoftAssertions();
        for (CommandLine c : all) {
            CommandSpec spec = c.getCommandSpec();
            UsageMessageSpec usage = spec.usageMessage();
            Map<String, List<String>> texts = new LinkedHashMap<>();
            texts.put("description", lines(usage.description()));
            texts.put("header", lines(usage.header()));
            texts.put("footer", lines(usage.footer()));
            texts.put("customSynopsis", lines(usage.customSynopsis()));
            texts.put("headings", lines(usage.headerHeading(), usage.synopsisHeading(), usage.descriptionHeading(),
                    usage.parameterListHeading(), usage.optionListHeading(), usage.commandListHeading(),
                    usage.footerHeading()));
            for (OptionSpec o : spec.options()) {
                texts.put("option " + o.longestName(), lines(o.renderedDescription()));
            }
            for (PositionalParamSpec p : spec.positionalParameters()) {
                texts.put("parameter " + p.paramLabel(), lines(p.renderedDescription()));
            }
            texts.forEach((where, lines) -> {
                for (String line : lines) {
                    checked.add(line);
                    soft.assertThatCode(() -> String.format(Locale.ROOT, line))
                            .as("%s of '%s': %s", where, spec.qualifiedName(), line).doesNotThrowAnyException();
                }
            });
        }
        soft.assertAll();
        assertThat(checked).hasSizeGreaterThan(100);
    }

    /** The escaped percent signs render as one. */
    @Test
    void benchHelp_rendersItsGoalsPercentSigns() {
        CommandLine root = Main.commandLine();
        CommandLine bench = root.getSubcommands().get("bench");
        assertThat(bench.getSubcommands().get("prefetch").getUsageMessage(CommandLine.Help.Ansi.OFF))
                .contains("80%").doesNotContain("80%%");
        assertThat(bench.getSubcommands().get("kvcache-attend").getUsageMessage(CommandLine.Help.Ansi.OFF))
                .contains("1%").doesNotContain("1%%");
    }

    private static List<String> lines(String... texts) {
        return texts == null ? List.of() : Arrays.stream(texts).filter(Objects::nonNull).toList();
    }

    private static void collect(CommandLine c, List<CommandLine> into) {
        into.add(c);
        for (CommandLine sub : c.getSubcommands().values()) {
            if (!into.contains(sub)) {
                collect(sub, into);
            }
        }
    }
}
