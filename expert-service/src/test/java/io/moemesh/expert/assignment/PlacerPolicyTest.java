package io.moemesh.expert.assignment;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.service.tls.MeshIdentity;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class PlacerPolicyTest {
    private final PlacerPolicy policy = PlacerPolicy.of(Set.of("router", "placer"));

    @ParameterizedTest
    @ValueSource(strings = {"placer", "router"})
    void placerIdentities_mayPlace(String caller) {
        assertThatCode(() -> policy.checkMayPlace(Optional.of(caller))).doesNotThrowAnyException();
    }

    @Test
    void anotherMeshIdentity_isRefused_namingTheAllowedOnesAndTheCaller() {
        assertThatThrownBy(() -> policy.checkMayPlace(Optional.of("gateway"))).isInstanceOf(SecurityException.class)
                .hasMessage("LoadAssignment is reserved to the placer identities [placer, router] "
                        + "(moemesh.expert.placer-identities); the caller is spiffe://moemesh/gateway");
    }

    @Test
    void aCallerWithoutIdentity_isRefused() {
        assertThatThrownBy(() -> policy.checkMayPlace(Optional.empty())).isInstanceOf(SecurityException.class)
                .hasMessageEndingWith("the caller is a mesh member without a spiffe://moemesh/ identity");
    }

    @Test
    void theSameHostOwner_ofAPeerUidDomainSocket_mayPlace() {
        assertThatCode(() -> policy.checkMayPlace(Optional.of(MeshIdentity.LOCAL_OWNER.name())))
                .doesNotThrowAnyException();
    }

    @Test
    void unauthenticated_plaintextPolicy_letsAnyonePlace() {
        assertThatCode(() -> PlacerPolicy.unauthenticated().checkMayPlace(Optional.empty())).doesNotThrowAnyException();
    }
}
