package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.placement.PlacementFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * The coordinator tests' InstanceLoader: records every call and fails where the test says; each call waits for the
 * gate.
 */
final class ScriptedLoader implements InstanceLoader {
    /** epoch → instance → experts prepared. */
    final Map<Long, Map<String, List<AssignedExpert>>> loaded = new ConcurrentHashMap<>();
    /** Every call and publication in order: "prepare 2 expert-0", "published 2", "commit 2 expert-0", "abort ...". */
    final List<String> events = new CopyOnWriteArrayList<>();
    /** PREPARE fails (UNAVAILABLE) on these instances. */
    final Set<String> failing = ConcurrentHashMap.newKeySet();
    /** PREPARE answered FAILED_PRECONDITION on these instances (a refusal of the epoch's number, not a broken pod). */
    final Set<String> refusing = ConcurrentHashMap.newKeySet();
    /**
     * PREPARE answered FAILED_PRECONDITION marked as a refusal of the epoch's number (expert.proto's ErrorInfo
     * EPOCH_NUMBER_REFUSED, {@link InstanceRefusedException#epochNumber()}) in words no expert-service used for it:
     * only the mark tells it from a refusal about the pod.
     */
    final Set<String> refusingMarked = ConcurrentHashMap.newKeySet();
    /**
     * PREPARE answered FAILED_PRECONDITION "assignment is for instance X, this is Y" on these instances: a pod that is
     * not the instance it is listed as, whichever epoch it is sent.
     */
    final Set<String> otherInstance = ConcurrentHashMap.newKeySet();
    /**
     * As an expert-service's moemesh.expert.max-epoch-jump: a PREPARE this far above the epoch an instance serves
     * ({@link #held}) is refused.
     */
    volatile long maxEpochJump = Long.MAX_VALUE;
    /** Calls waiting at the gate now. */
    final AtomicInteger waiting = new AtomicInteger();
    final Set<String> failingCommit = ConcurrentHashMap.newKeySet();
    /** COMMIT answered FAILED_PRECONDITION: the instance holds the epoch neither prepared nor served. */
    final Set<String> refusingCommit = ConcurrentHashMap.newKeySet();
    final Set<String> failingAbort = ConcurrentHashMap.newKeySet();
    /** The epoch in {@code <state-dir>/placement.json} (0: none) when each prepare and commit event happened. */
    final Map<String, Long> diskEpochAt = new ConcurrentHashMap<>();
    /** What each instance says it holds (DescribeInstance); nothing when absent. */
    final Map<String, HeldEpochs> held = new ConcurrentHashMap<>();
    /** The instance sets the loader was told the router places on, in order. */
    final List<List<String>> placedOn = new CopyOnWriteArrayList<>();
    volatile CountDownLatch gate = new CountDownLatch(0);
    private final Supplier<Path> stateDir;

    /** @param stateDir the router's state folder (read when a call is recorded: a JUnit @TempDir is set late) */
    ScriptedLoader(Supplier<Path> stateDir) {
        this.stateDir = stateDir;
    }

    private void pass(Set<String> failingOnes, Instance in) {
        waiting.incrementAndGet();
        try {
            gate.await();
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        } finally {
            waiting.decrementAndGet();
        }
        if (failingOnes.contains(in.getId())) {
            throw new IllegalStateException("UNAVAILABLE io exception");
        }
    }

    private void record(String event) {
        Path f = stateDir.get().resolve("placement.json");
        diskEpochAt.put(event, Files.isRegularFile(f) ? PlacementFiles.read(f).getEpoch() : 0L);
        events.add(event);
    }

    @Override
    public void prepare(Instance in, long epoch, List<AssignedExpert> experts, Duration timeout) {
        pass(failing, in);
        long served = held.getOrDefault(in.getId(), HeldEpochs.NONE).served();
        if (otherInstance.contains(in.getId())) {
            throw new InstanceRefusedException("FAILED_PRECONDITION assignment is for instance \"" + in.getId()
                    + "\", this is " + in.getId() + "-elsewhere", null);
        }
        if (refusing.contains(in.getId())) {
            throw new InstanceRefusedException("FAILED_PRECONDITION epoch " + epoch
                    + " is already prepared with a different assignment (3 experts); a new assignment needs a new epoch",
                    null);
        }
        if (refusingMarked.contains(in.getId())) {
            throw new InstanceRefusedException("FAILED_PRECONDITION epoch " + epoch + " cannot be taken by this pod",
                    null, true);
        }
        if (served != 0 && epoch - served > maxEpochJump) {
            throw new InstanceRefusedException("FAILED_PRECONDITION assignment epoch " + epoch + " jumps "
                    + (epoch - served) + " epochs past the served epoch " + served, null);
        }
        record("prepare " + epoch + " " + in.getId());
        loaded.computeIfAbsent(epoch, e -> new ConcurrentHashMap<>()).put(in.getId(), experts);
    }

    @Override
    public void commit(Instance in, long epoch, Duration timeout) {
        pass(failingCommit, in);
        if (refusingCommit.contains(in.getId())) {
            throw new InstanceRefusedException("FAILED_PRECONDITION cannot commit epoch " + epoch, null);
        }
        record("commit " + epoch + " " + in.getId());
    }

    @Override
    public void abort(Instance in, long epoch, Duration timeout) {
        pass(failingAbort, in);
        events.add("abort " + epoch + " " + in.getId());
    }

    @Override
    public HeldEpochs held(Instance in, Duration timeout) {
        pass(failing, in);
        return held.getOrDefault(in.getId(), HeldEpochs.NONE);
    }

    @Override
    public void placingOn(List<Instance> instances) {
        placedOn.add(instances.stream().map(Instance::getId).toList());
    }
}
