package io.moemesh.router.grpc;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Who may Replan, as a plain object; RouterServiceSocketTest checks it over a real mutual TLS port. */
class OperatorPolicyTest {
    private final OperatorPolicy policy = OperatorPolicy.of(Set.of("placer", "ops"));

    @ParameterizedTest
    @ValueSource(strings = {"placer", "ops"})
    void operatorIdentities_mayReplan(String caller) {
        assertThatCode(() -> policy.checkMayReplan(Optional.of(caller))).doesNotThrowAnyException();
    }

    @ParameterizedTest
    @ValueSource(strings = {"gateway", "router", "expert-0"})
    void anotherMeshIdentity_isRefused_namingTheAllowedOnesAndTheCaller(String caller) {
        assertThatThrownBy(() -> policy.checkMayReplan(Optional.of(caller))).isInstanceOf(SecurityException.class)
                .hasMessage("Replan is reserved to the operator identities [ops, placer] "
                        + "(moemesh.router.operator-identities); the caller is spiffe://moemesh/" + caller);
    }

    @Test
    void aCallerWithoutIdentity_isRefused() {
        assertThatThrownBy(() -> policy.checkMayReplan(Optional.empty())).isInstanceOf(SecurityException.class)
                .hasMessageEndingWith("the caller is a mesh member without a spiffe://moemesh/ identity");
    }

    @Test
    void unauthenticated_plaintextPolicy_letsAnyoneReplan() {
        assertThatCode(() -> OperatorPolicy.unauthenticated().checkMayReplan(Optional.empty()))
                .doesNotThrowAnyException();
    }
}
