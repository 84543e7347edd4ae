package io.moemesh.gateway.config;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.health.Check;
import io.moemesh.gateway.health.ExpertReadiness;
import io.moemesh.gateway.health.HealthMonitor;
import io.moemesh.gateway.health.HttpSelfProbe;
import io.moemesh.gateway.health.ListenerLoad;
import io.moemesh.gateway.health.StallDetector;
import io.moemesh.gateway.placement.PlacementSource;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.model.MoeModel;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.URI;
import java.time.Duration;
import java.util.Optional;
import org.apache.catalina.connector.Connector;
import org.apache.coyote.AbstractProtocol;
import org.apache.coyote.ProtocolHandler;
import org.springframework.boot.availability.AvailabilityChangeEvent;
import org.springframework.boot.availability.ReadinessState;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.boot.tomcat.TomcatWebServer;
import org.springframework.boot.web.server.context.WebServerApplicationContext;
import org.springframework.context.ApplicationContext;
import org.springframework.context.ApplicationListener;
import org.springframework.context.SmartLifecycle;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

/**
 * Thin Spring adapters for the gateway's health checks (the logic is in {@code io.moemesh.gateway.health}):
 * the indicators {@code experts}, {@code engine}, {@code engineLiveness}, {@code httpApi} and
 * {@code httpApiLiveness} that application.yaml puts into the actuator's readiness and liveness groups, the
 * public listener's load read from Tomcat for the HTTP self-probe, and the monitor that probes the HTTP listener
 * and mirrors readiness into the gateway's gRPC health service.
 */
@Configuration(proxyBeanMethods = false)
public class HealthConfiguration {

    @Bean
    ExpertReadiness expertReadiness(Optional<MeshExpertDispatch> mesh, Optional<PlacementSource> source) {
        return source.isEmpty() ? new ExpertReadiness(mesh.orElse(null))
                : new ExpertReadiness(mesh.orElse(null), source.get());
    }

    @Bean
    StallDetector stallDetector(EngineLoop loop, GatewayProperties p, MoeModel model, Optional<MeshExpertDispatch> mesh,
                                MeterRegistry meters) {
        Duration stall = p.health().engineStall(model.config().numLayers(), p.dispatch().stepDeadline(), mesh.isPresent());
        StallDetector detector = new StallDetector(new StallDetector.Progress() {
            @Override
            public boolean busy() {
                return loop.busy();
            }

            @Override
            public long lastProgressNanos() {
                return loop.lastProgressNanos();
            }

            @Override
            public boolean alive() {
                return loop.alive();
            }
        }, System::nanoTime, stall, p.health().engineWedged(stall));
        Gauge.builder("moemesh.gateway.engine.stalled", detector, d -> d.stalledNanos() / 1e9).baseUnit("seconds")
                .description("how long the engine has had work without finishing a step; 0 while idle").register(meters);
        return detector;
    }

    @Bean
    HttpSelfProbe httpSelfProbe(GatewayProperties p, Environment env, MeterRegistry meters, ApplicationContext context) {
        GatewayProperties.Health h = p.health();
        String address = env.getProperty("server.address", "");
        // The listener's own address, unless it listens on every address (then loopback reaches it).
        String host = address.isBlank() || address.equals("0.0.0.0") || address.equals("::") ? "127.0.0.1"
                : address.contains(":") ? "[" + address + "]" : address;
        // Tomcat closes a connection idle for its connection timeout (60 s unless set), or between requests for its
        // keep-alive timeout (the connection timeout unless set): see HttpSelfProbe.progressWindow.
        Duration progressWindow = HttpSelfProbe.progressWindow(
                env.getProperty("server.tomcat.connection-timeout", Duration.class, Duration.ofSeconds(60)),
                env.getProperty("server.tomcat.keep-alive-timeout", Duration.class));
        HttpSelfProbe probe = new HttpSelfProbe(() -> {
            int port = h.httpProbePort() > 0 ? h.httpProbePort() : env.getProperty("local.server.port", Integer.class, 0);
            return port > 0 ? Optional.of(URI.create("http://" + host + ":" + port + "/v1/models")) : Optional.empty();
        }, h.httpProbeTimeout(), h.httpProbeFailures(), () -> tomcatLoad(context), progressWindow);
        FunctionCounter.builder("moemesh.gateway.http.probe.failures", probe, HttpSelfProbe::failuresTotal)
                .description("self-probes of the public HTTP listener that got no answer").register(meters);
        return probe;
    }

    /**
     * The public listener's load, from the connector of the main context's Tomcat (the actuator's listener is another
     * server, in its own context); unknown before the server exists or with another container.
     */
    static ListenerLoad tomcatLoad(ApplicationContext context) {
        if (!(context instanceof WebServerApplicationContext w) || !(w.getWebServer() instanceof TomcatWebServer t)) {
            return ListenerLoad.UNKNOWN;
        }
        Connector[] connectors = t.getTomcat().getService().findConnectors();
        if (connectors.length == 0) {
            return ListenerLoad.UNKNOWN;
        }
        ProtocolHandler handler = connectors[0].getProtocolHandler();
        int busy = -1;
        int maxWorkers = -1;
        long completed = -1;
        if (handler.getExecutor() instanceof org.apache.tomcat.util.threads.ThreadPoolExecutor e) {
            busy = e.getActiveCount();
            maxWorkers = e.getMaximumPoolSize();
            completed = e.getCompletedTaskCount();
        } else if (handler.getExecutor() instanceof java.util.concurrent.ThreadPoolExecutor e) {
            busy = e.getActiveCount();
            maxWorkers = e.getMaximumPoolSize();
            completed = e.getCompletedTaskCount();
        }
        long connections = -1;
        long maxConnections = -1;
        if (handler instanceof AbstractProtocol<?> protocol) {
            connections = protocol.getConnectionCount();
            maxConnections = protocol.getMaxConnections();
        }
        return new ListenerLoad(busy, maxWorkers, connections, maxConnections, completed);
    }

    @Bean
    HealthMonitor healthMonitor(ExpertReadiness experts, StallDetector engine, HttpSelfProbe http, GatewayProperties p,
                                GrpcServerLifecycle grpc, MeterRegistry meters) {
        // Before the gRPC server starts: it must not say SERVING before the monitor decided the gateway is ready.
        grpc.startNotServing();
        HealthMonitor monitor = new HealthMonitor(experts, engine, http, p.health().httpProbeInterval(),
                p.health().grpcHealthInterval(), grpc::setServing);
        Gauge.builder("moemesh.gateway.ready", monitor, m -> m.published() ? 1 : 0)
                .description("1 while the gateway reports ready (actuator readiness components, gRPC health SERVING)")
                .register(meters);
        return monitor;
    }

    /**
     * Runs the monitor: started after the gRPC server and the drain lifecycle, stopped before them, so gRPC health
     * turns NOT_SERVING before draining begins. Listens to Spring's readiness state to publish its changes at once.
     */
    @Bean
    HealthMonitorLifecycle healthMonitorLifecycle(HealthMonitor monitor) {
        return new HealthMonitorLifecycle(monitor);
    }

    static final class HealthMonitorLifecycle implements SmartLifecycle, ApplicationListener<AvailabilityChangeEvent<?>> {
        private final HealthMonitor monitor;
        private volatile boolean running;

        HealthMonitorLifecycle(HealthMonitor monitor) {
            this.monitor = monitor;
        }

        @Override
        public void onApplicationEvent(AvailabilityChangeEvent<?> event) {
            if (event.getState() instanceof ReadinessState state) {
                monitor.acceptingTraffic(state == ReadinessState.ACCEPTING_TRAFFIC);
            }
        }

        @Override
        public void start() {
            monitor.start();
            running = true;
        }

        @Override
        public void stop() {
            monitor.close();
            running = false;
        }

        @Override
        public boolean isRunning() {
            return running;
        }

        /** Above DrainLifecycle (MAX - 768) and GrpcServerLifecycle (MAX - 2048): started last, stopped first. */
        @Override
        public int getPhase() {
            return Integer.MAX_VALUE - 512;
        }
    }

    @Bean
    HealthIndicator expertsHealthIndicator(ExpertReadiness experts) {
        return () -> health(experts.check());
    }

    @Bean
    HealthIndicator engineHealthIndicator(StallDetector engine) {
        return () -> health(engine.readiness());
    }

    @Bean
    HealthIndicator engineLivenessHealthIndicator(StallDetector engine) {
        return () -> health(engine.liveness());
    }

    @Bean
    HealthIndicator httpApiHealthIndicator(HttpSelfProbe http) {
        return () -> health(http.readiness());
    }

    @Bean
    HealthIndicator httpApiLivenessHealthIndicator(HttpSelfProbe http) {
        return () -> health(http.liveness());
    }

    private static Health health(Check c) {
        return (c.up() ? Health.up() : Health.down()).withDetail("reason", c.reason()).withDetails(c.details()).build();
    }
}
