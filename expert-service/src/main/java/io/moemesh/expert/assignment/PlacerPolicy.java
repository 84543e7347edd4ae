package io.moemesh.expert.assignment;

import io.moemesh.service.tls.MeshIdentity;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Who may set this instance's assignment (LoadAssignment): only the placer identities, because an assignment
 * decides what the instance serves and at which epoch (a forged one could make it refuse every request).
 * Prefetch, DescribeInstance and ExpertBatch change no placement and are open to every member of the mesh
 * (every peer that passed the mutual TLS handshake). Without TLS (plaintext, chosen explicitly) no caller has
 * an identity and the policy is {@link #unauthenticated()}: the explicit opt-out of TLS is also one of this
 * check; the epoch-jump limit still applies. The same-host owner ({@code MeshIdentity.LOCAL_OWNER}: a caller on the
 * {@code peer-uid} domain socket the kernel verified to run as this instance's uid) may place too: that uid can read
 * the placer's private key, so refusing it would protect nothing.
 *
 * @param identities    the names allowed to place (mesh identities, {@code spiffe://moemesh/NAME})
 * @param authenticated false: anyone may place (plaintext mode)
 */
public record PlacerPolicy(Set<String> identities, boolean authenticated) {
    public PlacerPolicy {
        identities = Set.copyOf(identities);
    }

    /** Only these identities may place. */
    public static PlacerPolicy of(Set<String> identities) {
        return new PlacerPolicy(identities, true);
    }

    /** Anyone may place: the port has no TLS, so callers have no identity. */
    public static PlacerPolicy unauthenticated() {
        return new PlacerPolicy(Set.of(), false);
    }

    /**
     * @param caller the verified identity of the caller, empty when its certificate carries none
     * @throws SecurityException (PERMISSION_DENIED) when the caller may not place
     */
    public void checkMayPlace(Optional<String> caller) {
        if (!authenticated || caller.filter(c -> identities.contains(c) || c.equals(MeshIdentity.LOCAL_OWNER.name()))
                .isPresent()) {
            return;
        }
        throw new SecurityException("LoadAssignment is reserved to the placer identities " + new TreeSet<>(identities)
                + " (moemesh.expert.placer-identities); the caller is "
                + caller.map(c -> "spiffe://moemesh/" + c).orElse("a mesh member without a spiffe://moemesh/ identity"));
    }
}
