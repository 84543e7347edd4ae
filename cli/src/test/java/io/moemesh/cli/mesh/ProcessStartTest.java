package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Which live process a mesh.json entry names: the process's start in ticks since boot and the boot's id, not the
 * wall-clock instant the JDK derives from them, which a clock step moves.
 */
class ProcessStartTest {
    private static final ProcessHandle SELF = ProcessHandle.current();
    private static final Instant STARTED = Instant.parse("2026-12-08T10:00:00Z");
    private Process sleeper;

    @AfterEach
    void kill() {
        if (sleeper != null) {
            sleeper.destroyForcibly();
        }
    }

    /** This JVM as a host would report it: booted as {@code bootId}, its start seen through a clock {@code step}. */
    private static ProcessStart.Source host(String bootId, Duration step) {
        return p -> new ProcessStart(STARTED.plus(step).toString(), bootId, 4242);
    }

    private static MeshState.Service recorded(ProcessStart.Source starts) {
        return new MeshState.Service("expert-0", 0, "", 1, 2, "/l", List.of("java"), Map.of())
                .withProcess(SELF, starts);
    }

    /**
     * NTP, a resumed VM or date -s steps the wall clock by 2 s: the JVM that checks (down, the supervisor) derives
     * another start instant than the one that recorded it. The entry still names the same process: down stops it,
     * the supervisor starts no second copy.
     */
    @Test
    void recordedProcess_staysTheSameWhenTheWallClockSteps() {
        MeshState.Service s = recorded(host("boot-a", Duration.ZERO));
        assertThat(s.startedAt()).isEqualTo(STARTED.toString());
        assertThat(s.process(host("boot-a", Duration.ofSeconds(2)))).contains(SELF);
        assertThat(s.process(host("boot-a", Duration.ofHours(-1)))).contains(SELF);
    }

    /** After a reboot the ticks start again from 0: a process of the new boot with the same pid is another one. */
    @Test
    void recordedProcess_isGoneWhenTheBootIdChanges() {
        MeshState.Service s = recorded(host("boot-a", Duration.ZERO));
        assertThat(s.process(host("boot-b", Duration.ZERO))).isEmpty();
    }

    /** A mesh.json of an earlier build has the start instant only: compared as before (and off Linux). */
    @Test
    void entryWithTheStartInstantOnly_isMatchedByTheInstant() {
        String instant = SELF.info().startInstant().orElseThrow().toString();
        MeshState.Service old = new MeshState.Service("expert-0", SELF.pid(), instant, 1, 2, "/l", List.of("java"),
                Map.of());
        assertThat(old.bootId()).isNull();
        assertThat(old.process()).contains(SELF);
        assertThat(new MeshState.Service("expert-0", SELF.pid(), STARTED.toString(), 1, 2, "/l", List.of("java"),
                Map.of()).process()).isEmpty();
    }

    /** On Linux: field 22 of /proc/PID/stat and this boot's id; a process that exited is nobody's any more. */
    @Test
    void onLinux_aStartIsTicksSinceBootOfThisBoot() throws IOException {
        Path bootId = Path.of("/proc/sys/kernel/random/boot_id");
        assumeTrue(Files.isReadable(bootId), "not Linux");
        sleeper = new ProcessBuilder("sleep", "600").start();
        ProcessStart start = ProcessStart.read(sleeper.toHandle());
        assertThat(start.bootId()).isEqualTo(Files.readString(bootId, StandardCharsets.US_ASCII).strip());
        assertThat(start.ticks()).isGreaterThanOrEqualTo(ProcessStart.read(SELF).ticks()).isPositive();
        assertThat(start.instant()).isEqualTo(sleeper.info().startInstant().orElseThrow().toString());

        MeshState.Service s = new MeshState.Service("expert-0", 0, "", 1, 2, "/l", List.of("sleep"), Map.of())
                .withProcess(sleeper.toHandle());
        assertThat(s.bootId()).isEqualTo(start.bootId());
        assertThat(s.startTicks()).isEqualTo(start.ticks());
        assertThat(s.process()).contains(sleeper.toHandle());
        sleeper.destroyForcibly();
        await().atMost(Duration.ofSeconds(10)).until(() -> s.process().isEmpty());
    }
}
