package io.moemesh.router.grpc;

import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Who may call Replan: only the operator identities ({@code moemesh.router.operator-identities}), because a replan
 * changes the whole mesh (every instance loads a new assignment, every gateway follows it). The other methods are
 * open to every member of the mesh (every peer that passed the mutual TLS handshake): gateways report routes and
 * watch placements, anyone may ask DescribeRouter or PredictPaths. Without TLS (plaintext, chosen explicitly) no
 * caller has an identity and the policy is {@link #unauthenticated()}, as the expert-service's LoadAssignment check
 * is (its PlacerPolicy).
 *
 * @param identities    the names allowed to replan (mesh identities, {@code spiffe://moemesh/NAME})
 * @param authenticated false: anyone may replan (plaintext mode)
 */
public record OperatorPolicy(Set<String> identities, boolean authenticated) {
    public OperatorPolicy {
        identities = Set.copyOf(identities);
    }

    /** Only these identities may replan. */
    public static OperatorPolicy of(Set<String> identities) {
        return new OperatorPolicy(identities, true);
    }

    /** Anyone may replan: the port has no TLS, so callers have no identity. */
    public static OperatorPolicy unauthenticated() {
        return new OperatorPolicy(Set.of(), false);
    }

    /**
     * @param caller the verified identity of the caller, empty when its certificate carries none
     * @throws SecurityException (PERMISSION_DENIED) when the caller may not replan, naming its identity
     */
    public void checkMayReplan(Optional<String> caller) {
        if (!authenticated || caller.filter(identities::contains).isPresent()) {
            return;
        }
        throw new SecurityException("Replan is reserved to the operator identities " + new TreeSet<>(identities)
                + " (moemesh.router.operator-identities); the caller is "
                + caller.map(c -> "spiffe://moemesh/" + c).orElse("a mesh member without a spiffe://moemesh/ identity"));
    }
}
