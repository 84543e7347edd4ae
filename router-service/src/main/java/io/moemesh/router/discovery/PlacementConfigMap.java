package io.moemesh.router.discovery;

/**
 * The ConfigMap the router publishes placements to (the chart creates it empty; the router's Role may get, update and
 * patch it, never create it). The Kubernetes implementation is {@code io.moemesh.router.kubernetes}.
 */
public interface PlacementConfigMap {

    /** Its current {@code placement.json} value and resourceVersion. */
    Stored read();

    /**
     * Replaces {@code placement.json} with {@code json}, other keys kept, only if the ConfigMap is still at
     * {@code resourceVersion} (optimistic concurrency: the API server answers 409 Conflict otherwise).
     *
     * @throws ConflictException when another writer changed it since it was read
     */
    void replace(String json, String resourceVersion) throws ConflictException;

    /** What {@link #read} found: {@code placementJson} is null when the key is absent. */
    record Stored(String placementJson, String resourceVersion) {
    }

    /** The ConfigMap changed since it was read (HTTP 409). */
    final class ConflictException extends Exception {
        public ConflictException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
