package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class StateDirOptionTest {

    /** up's "stop it with: moemesh down --state-dir ..." is pasted into a shell: a path must stay one word. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "/tmp/moemesh/.moemesh              | --state-dir /tmp/moemesh/.moemesh",
        "/home/a/My Projects/moemesh/.moemesh | --state-dir '/home/a/My Projects/moemesh/.moemesh'",
        "/tmp/no#1/$HOME/s                  | --state-dir '/tmp/no#1/$HOME/s'",
        "/tmp/it's                          | --state-dir '/tmp/it'\\''s'",
    })
    void argument_quotesAPathTheShellWouldSplitOrExpand(String dir, String argument) {
        assertThat(StateDirOption.argument(Path.of(dir))).isEqualTo(argument);
    }
}
