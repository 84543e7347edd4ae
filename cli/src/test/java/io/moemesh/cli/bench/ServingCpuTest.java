package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;
import static org.awaitility.Awaitility.await;

import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * bench startup's `up` CPU figure is "until SERVING": each service is sampled when `up` reports it SERVING, not at
 * the end, by when the services that served first have run their kernel warm-ups.
 */
class ServingCpuTest {

    @Test
    void servingLine_samplesThatProcessAtOnce_notTheWorkItDoesAfterwards() throws Exception {
        assumeThat(Files.isDirectory(Path.of("/proc/self/task"))).as("Linux /proc").isTrue();
        // A service that idles until told, then works on: the kernel warm-up an expert-service starts once SERVING.
        Process service = new ProcessBuilder("sh", "-c", "read go; while :; do :; done").start();
        try {
            ServingCpu cpu = new ServingCpu(ProcessCpu::of);
            cpu.accept("moemesh up: starting 2 expert service(s), the router and the gateway for m (logs in /x)");
            // The line MeshLauncher prints, here with a domain socket endpoint in a folder with a space.
            cpu.accept("moemesh up: expert-0 SERVING at unix:///tmp/my state/sockets/expert-0.sock (pid "
                    + service.pid() + ", 3.1 s)");

            OutputStream go = service.getOutputStream();
            go.write('\n');
            go.flush();
            await().atMost(Duration.ofMinutes(1))
                    .until(() -> ProcessCpu.of(service.pid()).map(ProcessCpu::total).orElse(0.0) >= 0.3);

            assertThat(cpu.atServing()).containsOnlyKeys("expert-0");
            assertThat(cpu.atServing().get("expert-0").total()).isLessThan(0.1);
        } finally {
            service.destroyForcibly();
            service.waitFor();
        }
    }

    @Test
    void servingLineOfAProcessAlreadyGone_recordsNothing_soTheBenchCannotCountIt() {
        ServingCpu cpu = new ServingCpu(ProcessCpu::of);

        cpu.accept("moemesh up: gateway SERVING at 127.0.0.1:19301 (pid " + Long.MAX_VALUE + ", 9.0 s)");
        cpu.accept("moemesh up: router SERVING at 127.0.0.1:19302 (no pid)");

        assertThat(cpu.atServing()).isEmpty();
    }
}
