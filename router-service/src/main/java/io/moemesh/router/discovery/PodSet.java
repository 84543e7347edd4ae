package io.moemesh.router.discovery;

import io.moemesh.proto.router.v1.Instance;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The expert-service pods the discovery knows (from a list, then watch events) and the READY instance set they make.
 * A pod counts only when Running, its containers ready, not terminating and with a pod IP ({@link ExpertPod#judge});
 * a malformed pod is ignored and its reason logged once per pod and reason (so a pod that stays malformed is not
 * logged on every event or resync), never an error that stops the discovery. Not thread-safe: one discovery thread
 * owns it.
 */
public final class PodSet {
    private static final Logger log = LoggerFactory.getLogger(PodSet.class);

    private final LabelSelector selector;
    private final int defaultPort;
    private final Map<String, ExpertPod> pods = new HashMap<>();
    /** The reason last logged for an ignored pod, by name: the rate limit of those log lines. */
    private final Map<String, String> logged = new HashMap<>();

    public PodSet(LabelSelector selector, int defaultPort) {
        this.selector = selector;
        this.defaultPort = defaultPort;
    }

    /** Replaces every pod (a full list). */
    public void replaceAll(Collection<ExpertPod> listed) {
        pods.clear();
        for (ExpertPod p : listed) {
            if (p.name() != null) {
                pods.put(p.name(), p);
            }
        }
        logged.keySet().retainAll(pods.keySet());
    }

    /** A pod added or modified. */
    public void put(ExpertPod p) {
        if (p.name() == null) {
            log.warn("ignoring an expert-service pod without a name");
            return;
        }
        pods.put(p.name(), p);
    }

    /** A pod deleted. */
    public void remove(String name) {
        pods.remove(name);
        logged.remove(name);
    }

    /** Pods known, ready or not, ignored ones included. */
    public int seen() {
        return pods.size();
    }

    /** Every pod known, as last seen (a snapshot). */
    public List<ExpertPod> all() {
        return List.copyOf(pods.values());
    }

    /**
     * The container restart counts of the ready pods, by name: a restart at the same endpoint leaves {@link #ready}
     * unchanged, yet the restarted process holds nothing and must be placed on again.
     */
    public Map<String, Integer> restarts() {
        Map<String, Integer> out = new TreeMap<>();
        for (ExpertPod p : pods.values()) {
            if (p.judge(selector, defaultPort).instance() != null) {
                out.put(p.name(), p.restarts());
            }
        }
        return out;
    }

    /** The ready instances, sorted by id (pod name). */
    public List<Instance> ready() {
        Map<String, Instance> out = new TreeMap<>();
        for (ExpertPod p : pods.values()) {
            ExpertPod.Verdict v = p.judge(selector, defaultPort);
            if (v.instance() != null) {
                out.put(v.instance().getId(), v.instance());
                logged.remove(p.name());
            } else if (v.ignored()) {
                if (!v.reason().equals(logged.put(p.name(), v.reason()))) {
                    log.warn("ignoring expert-service pod {}: {}", p.name(), v.reason());
                }
            } else {
                logged.remove(p.name());
            }
        }
        return new ArrayList<>(out.values());
    }
}
