package io.moemesh.cli.chaos;

import io.grpc.StatusRuntimeException;
import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.Generation;
import io.moemesh.cli.mesh.MeshException;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.cli.mesh.ServiceProcess;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.SamplingParams;
import java.io.PrintWriter;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * Greedy streams through a supervised local mesh while expert-service instances are SIGKILLed one at a time: the
 * supervisor restarts each victim, and every finished request is compared with the reference engine's tokens.
 * Correctness must not depend on which replica computed what, nor on a replica dying mid-step: the gateway
 * retries a failed layer on a surviving replica, so the goal is zero failed requests and zero token differences.
 */
public final class ChaosRun {
    private final RunningMesh mesh;
    private final List<ChaosPrompt> prompts;
    private final ChaosPlan plan;
    private final PrintWriter progress;
    /** Sent on every call: the mesh's gateway refuses calls without a key when auth is on. */
    private final String apiKey;
    private final InstanceTraffic traffic = new InstanceTraffic();
    private final ConcurrentLinkedQueue<RequestOutcome> outcomes = new ConcurrentLinkedQueue<>();
    private long t0;
    /** When kills stop being scheduled (the plan's duration); the last kill is still followed to its recovery. */
    private long killUntil;
    /** When the streams stop starting requests: set once the kills are over (a last stretch of load after them). */
    private volatile long stopAt;
    private volatile boolean stopSet;

    public ChaosRun(RunningMesh mesh, List<ChaosPrompt> prompts, ChaosPlan plan, PrintWriter progress) {
        this(mesh, prompts, plan, progress, null);
    }

    /** @param apiKey the key the gateway's calls send (its auth is on); null = none */
    public ChaosRun(RunningMesh mesh, List<ChaosPrompt> prompts, ChaosPlan plan, PrintWriter progress, String apiKey) {
        if (prompts.isEmpty()) {
            throw new IllegalArgumentException("a chaos run needs at least one prompt");
        }
        if (mesh.state().supervisor() == null) {
            throw new IllegalArgumentException("a chaos run needs a supervised mesh (up --restart always): nothing "
                    + "would restart the instances it kills");
        }
        this.mesh = mesh;
        this.prompts = List.copyOf(prompts);
        this.plan = plan;
        this.progress = progress;
        this.apiKey = apiKey;
    }

    public ChaosReport run() {
        t0 = System.nanoTime();
        killUntil = t0 + plan.duration().toNanos();
        List<Kill> kills = new ArrayList<>();
        ExecutorService streams = Executors.newFixedThreadPool(plan.streams(), Thread.ofPlatform().name("chaos-stream-", 0)
                .daemon().factory());
        try (GatewayClient gateway = new GatewayClient(mesh.gatewayEndpoint(), plan.recoveryTimeout(), apiKey)) {
            for (int s = 0; s < plan.streams(); s++) {
                int stream = s;
                streams.submit(() -> stream(gateway, stream));
            }
            try {
                killLoop(kills);
            } finally {
                if (!stopSet) {
                    stopAt = System.nanoTime();
                    stopSet = true;
                }
            }
            streams.shutdown();
            if (!streams.awaitTermination(plan.recoveryTimeout().toSeconds() + 60, TimeUnit.SECONDS)) {
                streams.shutdownNow();
                throw new MeshException("chaos: requests did not finish within the recovery timeout after the run");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            streams.shutdownNow();
        }
        return new ChaosReport(plan, List.copyOf(outcomes), List.copyOf(kills), seconds(System.nanoTime()));
    }

    private void stream(GatewayClient gateway, int stream) {
        int next = stream;
        while (!stopSet || System.nanoTime() - stopAt < 0) {
            ChaosPrompt p = prompts.get(next % prompts.size());
            next += plan.streams();
            GenerateRequest req = GenerateRequest.newBuilder().setPrompt(p.text()).setRequestId("chaos-" + stream + "-" + next)
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(plan.maxTokens()).setTemperature(0)).build();
            double start = seconds(System.nanoTime());
            try {
                Generation g = gateway.generate(req, m -> { });
                outcomes.add(new RequestOutcome(start, seconds(System.nanoTime()), null,
                        Arrays.equals(g.generatedIds(), p.referenceIds())));
            } catch (StatusRuntimeException e) {
                outcomes.add(new RequestOutcome(start, seconds(System.nanoTime()),
                        e.getStatus().getCode() + ": " + e.getStatus().getDescription(), false));
            } catch (RuntimeException e) {
                outcomes.add(new RequestOutcome(start, seconds(System.nanoTime()), e.toString(), false));
            }
        }
    }

    private void killLoop(List<Kill> kills) throws InterruptedException {
        Random random = new Random(plan.seed());
        List<String> round = new ArrayList<>();
        long nextKill = t0 + plan.warmup().toNanos();
        while (System.nanoTime() - killUntil < 0 && (plan.maxKills() == 0 || kills.size() < plan.maxKills())) {
            long now = System.nanoTime();
            if (nextKill - now > 0) {
                Thread.sleep(pauseMillis(nextKill, killUntil, now));
                continue;
            }
            if (round.isEmpty()) {
                round.addAll(mesh.state().experts().stream().map(MeshState.Service::name).toList());
                Collections.shuffle(round, random);
            }
            String victim = round.removeFirst();
            long killedAt = System.nanoTime();
            Kill k = killAndFollow(victim);
            kills.add(k);
            progress.printf("chaos: t=%.1fs killed %s (pid %d): restarted +%.1fs, SERVING +%.1fs, traffic +%.1fs%n",
                    k.killedAt(), k.instance(), k.pid(), k.restartedAt() - k.killedAt(), k.servingAt() - k.killedAt(),
                    k.trafficAt() - k.killedAt());
            progress.flush();
            nextKill = killedAt + plan.killEvery().toNanos();
            if (!k.recovered()) {
                break;
            }
        }
        // Done killing (the duration is over, all kills made, or a victim did not come back; the last victim was
        // followed until it carried traffic): a last stretch of load, then stop.
        stopAt = System.nanoTime() + plan.warmup().toNanos();
        stopSet = true;
    }

    /**
     * How long the kill loop sleeps at {@code now} (System.nanoTime) before it looks again: until the next kill or
     * the end of the kills, whichever is first, plus 1 ms (a sleep rounded down to 0 would spin). Never negative:
     * {@code killUntil} may have passed since the loop's check, and a negative sleep threw, losing the whole run's
     * report.
     */
    static long pauseMillis(long nextKill, long killUntil, long now) {
        return TimeUnit.NANOSECONDS.toMillis(Math.max(0, Math.min(nextKill - now, killUntil - now))) + 1;
    }

    /** SIGKILL, then the supervisor's restart, SERVING, and the first batch the new process computes. */
    private Kill killAndFollow(String victim) {
        MeshState.Service before = mesh.state().service(victim);
        double killed = seconds(System.nanoTime());
        mesh.kill(victim);
        double restarted = Double.NaN;
        double serving = Double.NaN;
        double carries = Double.NaN;
        long deadline = System.nanoTime() + plan.recoveryTimeout().toNanos();
        try {
            MeshState.Service after;
            Optional<ProcessHandle> process;
            while (true) {
                after = mesh.state().service(victim);
                process = after.pid() != before.pid() ? after.process() : Optional.empty();
                if (process.isPresent()) {
                    break;
                }
                if (System.nanoTime() - deadline > 0) {
                    throw new MeshException("the supervisor did not restart it within " + plan.recoveryTimeout().toSeconds() + " s");
                }
                Thread.sleep(20);
            }
            restarted = seconds(System.nanoTime());
            ServiceProcess.awaitServing(after, process.get(), Instant.now().plusNanos(deadline - System.nanoTime()),
                    mesh.grpcCredentials(after));
            serving = seconds(System.nanoTime());
            int port = after.managementPort() > 0 ? after.managementPort() : after.httpPort();
            while (System.nanoTime() - deadline < 0) {
                OptionalDouble n = traffic.batches(port);
                if (n.isPresent() && n.getAsDouble() > 0) {
                    carries = seconds(System.nanoTime());
                    break;
                }
                Thread.sleep(50);
            }
        } catch (MeshException e) {
            progress.println("chaos: " + victim + " did not come back: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return new Kill(victim, before.pid(), killed, restarted, serving, carries);
    }

    private double seconds(long nanos) {
        return (nanos - t0) / 1e9;
    }
}
