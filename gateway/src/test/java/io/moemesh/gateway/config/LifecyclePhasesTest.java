package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.scheduling.DrainLifecycle;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.grpc.InsecureServerCredentials;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.boot.web.server.context.WebServerGracefulShutdownLifecycle;

/**
 * The gateway's stop order is its lifecycles' phases (Spring stops the highest first, one phase after another): the
 * health check turns NOT_SERVING, then the drain, then Tomcat's graceful shutdown, then the servers stop. Each in a
 * phase of its own, so no bean order decides it.
 */
class LifecyclePhasesTest {

    @Test
    void healthThenDrainThenTomcatsGracefulShutdownThenTheGrpcServer_eachInAPhaseOfItsOwn() {
        int health = new HealthConfiguration.HealthMonitorLifecycle(null).getPhase();
        int drain = new DrainLifecycle(null, null, Duration.ZERO).getPhase();
        int grpc = new GrpcServerLifecycle("test", "127.0.0.1", 0, InsecureServerCredentials.create(), 65536,
                Duration.ZERO, List.of(), List.of()).getPhase();

        assertThat(health).isGreaterThan(drain);
        assertThat(drain).isGreaterThan(WebServerGracefulShutdownLifecycle.SMART_LIFECYCLE_PHASE);
        assertThat(WebServerGracefulShutdownLifecycle.SMART_LIFECYCLE_PHASE).isGreaterThan(grpc);
    }
}
