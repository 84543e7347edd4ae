package io.moemesh.expert.backend;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Which Errors end the service and which only the call that hit them. */
class BackendFaultsTest {

    static Stream<Arguments> errors() {
        return Stream.of(
                Arguments.of(new OutOfMemoryError("Java heap space"), true),
                Arguments.of(new StackOverflowError(), true),
                Arguments.of(new UnknownError(), true),
                // a VirtualMachineError too, but the JDK's answer to a fault on a mapped (truncated) file
                Arguments.of(new InternalError("a fault occurred in an unsafe memory access operation"), false),
                Arguments.of(new AssertionError("a bug of one call"), false),
                Arguments.of(new NoClassDefFoundError("x/Y"), false));
    }

    @ParameterizedTest(name = "{0} -> fatal {1}")
    @MethodSource("errors")
    void theVmsOwnErrorsAreFatal_aMappedFileFaultAndOtherErrorsOnlyFailTheCall(Error e, boolean fatal) {
        assertThat(BackendFaults.fatal(e)).isEqualTo(fatal);
    }
}
