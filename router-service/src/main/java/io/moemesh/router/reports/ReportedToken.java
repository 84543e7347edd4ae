package io.moemesh.router.reports;

import java.util.List;

/**
 * One reported token (router.v1 RouteSample / TokenRoute), as received: not yet validated.
 *
 * @param requestId the request it belongs to (sequence context: the previous token of the same request)
 * @param position  its position in the sequence
 * @param tokenId   its vocabulary id, -1 when not known
 * @param layers    its routes, ascending by layer
 */
public record ReportedToken(String requestId, long position, int tokenId, List<ReportedLayer> layers) {
    public ReportedToken {
        layers = List.copyOf(layers);
    }
}
