package io.moemesh.kvcache.serving;

import io.moemesh.model.kv.ModelFingerprint;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The models a kvcache-service serves, found by the {@link ModelFingerprint} a request carries. Requests name a
 * model by its fingerprint, not its name: the fingerprint is what the block hashes are salted with, so it is
 * what decides whether stored blocks can be the request's at all.
 *
 * <p>An unknown fingerprint is {@link IllegalStateException} (FAILED_PRECONDITION on the wire), not a caller
 * mistake in the request: the gateway serves a model this service was not configured with, a deployment
 * inconsistency that no retry or other request fixes; the caller recomputes its KV.
 *
 * <p>{@link #close()} is the shutdown path: every model's DRAM blocks are demoted to its SSD tier
 * ({@code TieredKvStore.demoteAll}), every segment with unforced records is forced to stable storage whatever the
 * fsync policy ({@code SsdTier.sync}), and the tiers closed. That is how a put acknowledged in DRAM, which has no
 * SSD record until DRAM's pressure demotes it, survives a restart (a kill -9 loses it). It survives only if the SSD
 * tier takes it: a full SSD tier evicts blocks by its policy to make room (older SSD blocks, or ones demoted just
 * before), and a block it cannot take (pinned blocks fill it, an I/O error) is lost.
 */
public final class ServedModels implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ServedModels.class);

    private final List<ServedModel> models;
    private final Map<ModelFingerprint, ServedModel> byFingerprint = new HashMap<>();

    /** @throws IllegalArgumentException when two entries have the same name or the same fingerprint */
    public ServedModels(List<ServedModel> models) {
        this.models = List.copyOf(models);
        Map<String, ServedModel> names = new HashMap<>();
        for (ServedModel m : this.models) {
            ServedModel other = byFingerprint.putIfAbsent(m.fingerprint(), m);
            if (other != null) {
                throw new IllegalArgumentException("models " + other.name() + " and " + m.name()
                        + " have the same fingerprint " + m.fingerprint().hex() + ": configure the model once");
            }
            if (names.putIfAbsent(m.name(), m) != null) {
                throw new IllegalArgumentException("two served models are named " + m.name()
                        + ": model directories must have distinct names");
            }
        }
    }

    /**
     * The model whose blocks carry this fingerprint.
     *
     * @param fingerprint the request's {@code model_fingerprint} bytes
     * @throws IllegalArgumentException when it is not 32 bytes
     * @throws IllegalStateException    when no served model has it (FAILED_PRECONDITION)
     */
    public ServedModel find(byte[] fingerprint) {
        if (fingerprint.length != ModelFingerprint.BYTES) {
            throw new IllegalArgumentException("model_fingerprint: a model fingerprint has " + ModelFingerprint.BYTES
                    + " bytes, got " + fingerprint.length);
        }
        ServedModel m = byFingerprint.get(ModelFingerprint.of(fingerprint));
        if (m == null) {
            throw new IllegalStateException("model_fingerprint: " + ModelFingerprint.of(fingerprint).hex()
                    + " is not a model this kvcache-service serves (it serves " + names()
                    + "); configure its directory in moemesh.kvcache.model-dirs");
        }
        return m;
    }

    /** Every served model, in configuration order. */
    public List<ServedModel> all() {
        return models;
    }

    private String names() {
        return models.stream().map(m -> m.name() + " " + m.fingerprint().hex()).toList().toString();
    }

    /** Demotes DRAM to SSD, forces every segment and closes every model's tiers (see the class comment). */
    @Override
    public void close() {
        for (ServedModel m : models) {
            try {
                int moved = m.store().demoteAll();
                long left = m.store().dram().blockCount();
                m.ssd().sync();
                log.info("model {}: {} DRAM blocks written to the SSD tier ({} it could not take are lost, but for "
                        + "those promoted from it whose record is kept), segments forced; {} blocks on SSD", m.name(), moved, left, m.ssd().blockCount());
            } catch (RuntimeException e) {
                log.error("model {}: persisting the DRAM blocks at shutdown failed", m.name(), e);
            } finally {
                m.store().close();
            }
        }
    }
}
