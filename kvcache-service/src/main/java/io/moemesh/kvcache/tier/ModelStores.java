package io.moemesh.kvcache.tier;

import io.moemesh.model.kv.ModelFingerprint;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * The stores of the models a KV-cache service serves, one {@link TieredKvStore} (and one SSD directory) per model,
 * found by the model id a request names ({@code kvcache.v1}'s {@code model} field). A request for a model the
 * service does not serve is the caller's mistake: an {@link IllegalArgumentException} naming the field and the
 * models served. Immutable after construction; closing it closes every store.
 */
public final class ModelStores implements AutoCloseable {
    /** One served model. @param fingerprint what its block hashes are salted with */
    public record Served(String model, ModelFingerprint fingerprint, TieredKvStore store) {
        public Served {
            Objects.requireNonNull(model, "model");
            Objects.requireNonNull(fingerprint, "fingerprint");
            Objects.requireNonNull(store, "store");
        }
    }

    private final Map<String, Served> byModel = new TreeMap<>();

    /** @throws IllegalArgumentException when two entries name the same model or the same fingerprint */
    public ModelStores(Iterable<Served> served) {
        for (Served s : served) {
            if (byModel.values().stream().anyMatch(o -> o.fingerprint().equals(s.fingerprint()))) {
                throw new IllegalArgumentException("model " + s.model() + " has the fingerprint of another model: "
                        + s.fingerprint() + " (two ids for one model would share blocks under two names)");
            }
            if (byModel.putIfAbsent(s.model(), s) != null) {
                throw new IllegalArgumentException("model " + s.model() + " is configured twice");
            }
        }
    }

    /** The served model named {@code model}. @throws IllegalArgumentException naming it when it is not served */
    public Served forModel(String model) {
        Served s = model == null ? null : byModel.get(model);
        if (s == null) {
            throw new IllegalArgumentException("model: \"" + model + "\" is not served here; served: "
                    + byModel.keySet());
        }
        return s;
    }

    /** The served model whose blocks carry {@code fingerprint}. @throws IllegalArgumentException when unknown */
    public Served forFingerprint(ModelFingerprint fingerprint) {
        return byModel.values().stream().filter(s -> s.fingerprint().equals(fingerprint)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("model fingerprint " + fingerprint
                        + " is not served here; served: " + byModel.keySet()));
    }

    /** The served model ids, sorted. */
    public java.util.Set<String> models() {
        return java.util.Collections.unmodifiableSet(byModel.keySet());
    }

    @Override
    public void close() {
        byModel.values().forEach(s -> s.store().close());
    }
}
