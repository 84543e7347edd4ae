package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import java.util.concurrent.CancellationException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The one exception → Status mapping: each kind of failure gets its code, the most specific class first. */
class StatusMappingTest {

    static Stream<Arguments> failures() {
        return Stream.of(
                Arguments.of(new IllegalArgumentException("bad field"), Status.Code.INVALID_ARGUMENT),
                Arguments.of(new IllegalStateException("not now"), Status.Code.FAILED_PRECONDITION),
                // A CancellationException is an IllegalStateException: it must not be read as a failed precondition.
                Arguments.of(new CancellationException("call cancelled"), Status.Code.CANCELLED),
                Arguments.of(new SecurityException("who are you"), Status.Code.PERMISSION_DENIED),
                Arguments.of(new RejectedExecutionException("full"), Status.Code.RESOURCE_EXHAUSTED),
                Arguments.of(new TimeoutException("late"), Status.Code.DEADLINE_EXCEEDED),
                Arguments.of(Status.NOT_FOUND.withDescription("x").asRuntimeException(), Status.Code.NOT_FOUND),
                Arguments.of(new NullPointerException("bug"), Status.Code.INTERNAL));
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("failures")
    void toStatus_mapsEachKindOfFailureToItsCode(Throwable t, Status.Code code) {
        Status s = StatusMapping.toStatus(t);
        assertThat(s.getCode()).isEqualTo(code);
        if (code == Status.Code.INTERNAL) {
            assertThat(s.getDescription()).isEqualTo(StatusMapping.INTERNAL_DESCRIPTION);
        } else {
            assertThat(s.getDescription()).isEqualTo(code == Status.Code.NOT_FOUND ? "x" : t.getMessage());
        }
    }
}
