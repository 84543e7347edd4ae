package io.moemesh.router.discovery;

/**
 * The ConfigMap the router publishes placements to (the chart creates it empty; the router's Role may get and update
 * it, never create or patch it). The placement is stored in one of two forms, never both: compact JSON under the
 * {@code data} key {@value ConfigMapPublisher#KEY}, or its gzip under the {@code binaryData} key
 * {@value ConfigMapPublisher#GZIP_KEY} ({@link ConfigMapPublisher} chooses by size). The Kubernetes implementation is
 * {@code io.moemesh.router.kubernetes}.
 */
public interface PlacementConfigMap {

    /**
     * Its current placement (either form) and resourceVersion.
     *
     * @throws RefusedException when the API server refuses the read for good (e.g. 403, 404)
     */
    Stored read();

    /**
     * Stores {@code content} under its key and removes the other form's key, other keys kept, in ONE update and only
     * if the ConfigMap is still at {@code resourceVersion} (optimistic concurrency: the API server answers 409
     * Conflict otherwise), so a reader never sees both forms or neither.
     *
     * @throws ConflictException when another writer changed it since it was read
     * @throws RefusedException  when the API server refuses the update for good (e.g. 403, 404, 422)
     */
    void replace(Content content, String resourceVersion) throws ConflictException;

    /**
     * What {@link #read} found: {@code placementJson} is the {@value ConfigMapPublisher#KEY} value and
     * {@code placementGzip} the {@value ConfigMapPublisher#GZIP_KEY} bytes, each null when absent.
     */
    record Stored(String placementJson, byte[] placementGzip, String resourceVersion) {
        /** Only the plain form (or none). */
        public Stored(String placementJson, String resourceVersion) {
            this(placementJson, null, resourceVersion);
        }
    }

    /** One form of a placement: plain compact JSON ({@code gzip} null) or the gzip of it ({@code json} null). */
    record Content(String json, byte[] gzip) {
        public Content {
            if ((json == null) == (gzip == null)) {
                throw new IllegalArgumentException("exactly one of json and gzip must be set");
            }
        }

        public static Content plain(String json) {
            return new Content(json, null);
        }

        public static Content gzipped(byte[] gzip) {
            return new Content(null, gzip);
        }

        public boolean isGzip() {
            return gzip != null;
        }
    }

    /**
     * The API server refused the request for good (HTTP 4xx other than 408, 409 and 429: 403 Forbidden, 404 Not Found,
     * 422 Unprocessable, ...): sending it again fails the same way until someone fixes what the message names (the
     * Role's rule, the missing ConfigMap, the value), so it is not retried.
     */
    final class RefusedException extends RuntimeException {
        public RefusedException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** The ConfigMap changed since it was read (HTTP 409). */
    final class ConflictException extends Exception {
        public ConflictException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
