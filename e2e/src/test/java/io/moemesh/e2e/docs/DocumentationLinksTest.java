package io.moemesh.e2e.docs;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The documentation's relative links resolve: a page moved or a heading renamed breaks no reference to it. */
class DocumentationLinksTest {

    @Test
    void everyRelativeLinkOfTheProjectsMarkdown_resolvesToAFileAndHeading() throws IOException {
        Path root = TestModels.repoRoot();
        List<Path> pages;
        try (Stream<Path> walk = Files.walk(root)) {
            pages = walk.filter(p -> p.toString().endsWith(".md"))
                    .filter(p -> {
                        String rel = root.relativize(p).toString();
                        return !rel.contains("node_modules") && !rel.contains("target/") && !rel.startsWith(".");
                    })
                    .toList();
        }

        assertThat(pages).extracting(p -> root.relativize(p).toString())
                .contains("README.md", "docs/cli.md", "docs/performance.md", "gateway/README.md");
        assertThat(new MarkdownLinks().check(pages)).isEmpty();
    }

    @Test
    void brokenFileAndAnchor_areFound_whileCodeAndAbsoluteLinksAreNotChecked(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("b.md"), "# Big bodies (issue 13)\n## Same\n## Same\n<a name=\"x\"></a>\n");
        Path a = dir.resolve("a.md");
        Files.writeString(a, """
                [ok](b.md#big-bodies-issue-13) [dup](b.md#same-1) [html](b.md#x) [self](#top) [web](https://x.y/#z)
                # Top
                `[code](missing.md)`
                ```
                [fenced](missing.md)
                ```
                [gone](missing.md) [bad anchor](b.md#nope)
                """);

        List<MarkdownLinks.Broken> broken = new MarkdownLinks().check(List.of(a));

        assertThat(broken).extracting(MarkdownLinks.Broken::line, MarkdownLinks.Broken::target)
                .containsExactly(org.assertj.core.groups.Tuple.tuple(7, "missing.md"),
                        org.assertj.core.groups.Tuple.tuple(7, "b.md#nope"));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            Rerun on the domain socket, with grouping (issue 13, 2026-12-05 15:52–15:59) | rerun-on-the-domain-socket-with-grouping-issue-13-2026-12-05-15521559
            `bench mesh`: the per-layer hop                                             | bench-mesh-the-per-layer-hop
            KV-cache Attend: bytes on the wire per decode token                          | kv-cache-attend-bytes-on-the-wire-per-decode-token
            Weights beyond the tiny models: loaded at the disk's speed, on first touch   | weights-beyond-the-tiny-models-loaded-at-the-disks-speed-on-first-touch
            """)
    void slug_followsGithub(String heading, String slug) {
        assertThat(MarkdownLinks.slug(heading)).isEqualTo(slug);
    }
}
