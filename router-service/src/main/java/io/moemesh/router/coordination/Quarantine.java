package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.LongSupplier;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Instances left out of placement attempts because they keep failing them. Without it one Ready pod that cannot
 * load its share (a broken GPU, a refusal, a timeout every time) would fail every switch, since a switch publishes
 * only once all its instances prepared: a pod that died meanwhile would never be re-placed, and the experts it held
 * would stay at fewer copies for as long as the bad pod stays Ready.
 *
 * <p>An instance named by {@value #DEFAULT_FAILURES_IN_ROW} failed attempts in a row (a PREPARE, or the retry of a
 * COMMIT it missed, which also stops a switch) is quarantined; a failure counts against it only when it says
 * something of the pod ({@link #strikes}): not a refusal of the epoch's number ({@link #refusesTheEpoch}: a jump past
 * the max-epoch-jump, an epoch older than one held, a number it holds already, which every pod would answer alike;
 * any other refusal, e.g. an assignment for another instance, does count), and not when more than half of a set of
 * three or more failed the same attempt (then the attempt is at fault, e.g. a big re-plan slowing every load past the
 * timeout, and quarantining them would move the model to whichever pods are left). In a set of one or two a single
 * failing pod is half of it: exempting that would leave it failing every switch for good, so there it counts. It is
 * quarantined: {@link #admit} leaves it out of the sets the router
 * places on, for {@code first}, doubled with each quarantine in a row up to {@code max}. Once that ends it is tried
 * again with the others; one more failure quarantines it again at once (for twice as long), an epoch published with
 * it ends its record. One failure alone is not enough: a refusal the router itself fixes on the next attempt (an
 * epoch number the instance already holds) would otherwise cost an epoch without the instance and one with it. An
 * instance that leaves the set (its pod went or turned not ready) is forgotten: back, it is a new chance. The
 * quarantine never empties a set: when every instance of it is quarantined, all of them are tried.
 *
 * <p>It records nothing until {@link #enable}d: by the {@link InstanceSetFollower} of discovered pods, which leaves
 * the quarantined ones out. The configured instances of the static mode are not discovered: the operator listed each
 * of them, the router places on all of them (its first epoch waits for every one), and none is left out.
 *
 * <p>Thread-safe; listeners ({@link #onChange}) are called outside its lock, on the thread that reported the failure.
 */
public final class Quarantine {
    private static final Logger log = LoggerFactory.getLogger(Quarantine.class);
    /** Failed attempts in a row that quarantine an instance the first time. */
    public static final int DEFAULT_FAILURES_IN_ROW = 2;
    /** The first quarantine; it doubles with each one in a row. */
    public static final Duration DEFAULT_FIRST = Duration.ofSeconds(30);
    /** The longest quarantine. */
    public static final Duration DEFAULT_MAX = Duration.ofMinutes(10);

    /**
     * The epoch-number refusals' messages, after GrpcInstanceLoader's status-code prefix, as an expert-service without
     * the EPOCH_NUMBER_REFUSED mark words them: only for such an older instance during a rolling upgrade.
     */
    private static final Pattern EPOCH_REFUSAL = Pattern.compile(
            "(FAILED_PRECONDITION )?(assignment epoch \\d+ (is older than |jumps |is not below )"
                    + "|epoch \\d+ is already \\w+ with a different assignment)");

    /** What one instance is charged with: failures in a row, quarantines in a row, until when (nanoClock). */
    private static final class Record {
        int failuresInRow;
        int quarantines;
        long until;
        boolean quarantined;
        String lastError = "";
    }

    /** An instance left out now, for DescribeRouter-like views and logs. */
    public record Quarantined(String instanceId, int failuresInRow, Duration left, String lastError) {
    }

    private final int failuresInRow;
    private final Duration first;
    private final Duration max;
    private final LongSupplier nanoClock;
    private final Map<String, Record> records = new HashMap<>();
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();
    private volatile boolean enabled;

    /** With {@value #DEFAULT_FAILURES_IN_ROW} failures, 30 s doubling up to 10 min, on {@link System#nanoTime}. */
    public Quarantine() {
        this(DEFAULT_FAILURES_IN_ROW, DEFAULT_FIRST, DEFAULT_MAX, System::nanoTime);
    }

    /**
     * @param failuresInRow failed attempts in a row that quarantine an instance the first time (>= 1)
     * @param first         the first quarantine (> 0); it doubles with each one in a row
     * @param max           the longest quarantine (>= first)
     */
    public Quarantine(int failuresInRow, Duration first, Duration max, LongSupplier nanoClock) {
        if (failuresInRow < 1) {
            throw new IllegalArgumentException("failuresInRow must be >= 1, got " + failuresInRow);
        }
        if (first.isNegative() || first.isZero() || max.compareTo(first) < 0) {
            throw new IllegalArgumentException("quarantine must be 0 < first <= max, got " + first + " and " + max);
        }
        this.failuresInRow = failuresInRow;
        this.first = first;
        this.max = max;
        this.nanoClock = nanoClock;
    }

    /** From now on failures are recorded and instances quarantined. */
    public void enable() {
        enabled = true;
    }

    /** Called (outside the lock) whenever an instance is quarantined: the sets placed on change. */
    public void onChange(Runnable listener) {
        listeners.add(listener);
    }

    /**
     * The instances of {@code ids} failed an attempt (with {@code why}, for the logs): each is quarantined once it
     * failed often enough in a row, or at once after a quarantine of it ended.
     */
    void failed(Map<String, String> why) {
        if (!enabled) {
            return;
        }
        List<String> quarantinedNow = new ArrayList<>();
        synchronized (this) {
            long now = nanoClock.getAsLong();
            for (Map.Entry<String, String> e : why.entrySet()) {
                Record r = records.computeIfAbsent(e.getKey(), k -> new Record());
                r.failuresInRow++;
                r.lastError = e.getValue();
                if (r.quarantined && now - r.until < 0) {
                    continue; // tried by a Replan while left out of the switches: it stays until its end
                }
                if (r.quarantines > 0 || r.failuresInRow >= failuresInRow) {
                    long nanos = first.toNanos() << Math.min(r.quarantines, 30);
                    nanos = nanos <= 0 ? max.toNanos() : Math.min(nanos, max.toNanos());
                    r.quarantines++;
                    r.quarantined = true;
                    r.until = now + nanos;
                    quarantinedNow.add(e.getKey());
                    log.warn("expert-service instance {} failed {} placement attempts in a row (last: {}): left out of "
                            + "placements for {} s, then tried again; the router places on the other instances "
                            + "meanwhile", e.getKey(), r.failuresInRow, e.getValue(), nanos / 1_000_000_000L);
                }
            }
        }
        if (!quarantinedNow.isEmpty()) {
            listeners.forEach(Runnable::run);
        }
    }

    /**
     * What one failed attempt counts against its instances: {@code failures} (by id: the failures that say something
     * of the pod, epoch-number refusals left out by the caller), or nothing when {@code failedCount} (every failure,
     * refusals included) is more than half of {@code setSize} instances attempted and that set has three or more.
     * Smaller sets are never exempt: one bad pod of two is half the set, and exempting it would fail every switch.
     */
    static Map<String, String> strikes(Map<String, String> failures, int failedCount, int setSize) {
        if (failures.isEmpty() || setSize < 3 || (long) failedCount * 2 <= setSize) {
            return failures;
        }
        log.info("{} of the {} instances failed the same placement attempt: counted against none of them (the attempt"
                + " is at fault, not the pods)", failedCount, setSize);
        return Map.of();
    }

    /**
     * Whether {@code t} is an instance refusing the epoch's number (older than an epoch it holds, too far past the
     * served one, a number it holds with other experts), which every pod would answer alike and the router fixes by
     * its choice of number. FAILED_PRECONDITION alone also carries refusals about the pod itself (an assignment for
     * another instance), which must count against it, so it takes the expert-service's mark
     * ({@link InstanceRefusedException#epochNumber()}, the ErrorInfo reason EPOCH_NUMBER_REFUSED of expert.proto).
     * An expert-service from before that reason sends no mark: during a rolling upgrade its refusals are still told
     * by their message prefixes ("assignment epoch N is older than / jumps / is not below ..." or "epoch N is already
     * served|prepared with a different assignment"), a fallback that can go once no such expert-service is left.
     */
    static boolean refusesTheEpoch(Throwable t) {
        if (!(t instanceof InstanceRefusedException refused)) {
            return false;
        }
        return refused.epochNumber()
                || (t.getMessage() != null && EPOCH_REFUSAL.matcher(t.getMessage()).lookingAt());
    }

    /** The instances of {@code ids} hold a published epoch: their records end. */
    synchronized void placed(Collection<String> ids) {
        for (String id : ids) {
            Record r = records.remove(id);
            if (r != null && r.quarantines > 0) {
                log.info("expert-service instance {} loaded a published epoch: no longer quarantined", id);
            }
        }
    }

    /** Forgets the instances not in {@code ids} (they left the set: back, they get a new chance). */
    public synchronized void retain(Set<String> ids) {
        records.keySet().retainAll(ids);
    }

    /**
     * {@code set} without the instances quarantined now, in its order; all of it when every instance is quarantined
     * (a placement needs instances, and nothing better is left to try).
     */
    public synchronized List<Instance> admit(List<Instance> set) {
        long now = nanoClock.getAsLong();
        List<Instance> out = set.stream().filter(in -> !leftOut(in.getId(), now)).toList();
        return out.isEmpty() ? set : out;
    }

    private boolean leftOut(String id, long now) {
        Record r = records.get(id);
        return r != null && r.quarantined && now - r.until < 0;
    }

    /** When the next quarantine of the instances of {@code ids} ends, from now; null when none of them is in one. */
    public synchronized Duration nextRelease(Set<String> ids) {
        long now = nanoClock.getAsLong();
        long soonest = Long.MAX_VALUE;
        for (String id : ids) {
            if (leftOut(id, now)) {
                soonest = Math.min(soonest, records.get(id).until - now);
            }
        }
        return soonest == Long.MAX_VALUE ? null : Duration.ofNanos(soonest);
    }

    /** The instances quarantined now, by id. */
    public synchronized List<Quarantined> quarantined() {
        long now = nanoClock.getAsLong();
        Map<String, Quarantined> out = new TreeMap<>();
        records.forEach((id, r) -> {
            if (leftOut(id, now)) {
                out.put(id, new Quarantined(id, r.failuresInRow, Duration.ofNanos(r.until - now), r.lastError));
            }
        });
        return List.copyOf(out.values());
    }

    /** Instances quarantined now (count). */
    public synchronized int size() {
        long now = nanoClock.getAsLong();
        return (int) records.keySet().stream().filter(id -> leftOut(id, now)).count();
    }
}
