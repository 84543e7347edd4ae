package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.moemesh.gateway.serving.OffloadFailedException;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.service.grpc.CallReset;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A Generate whose sequence fails before its first token (after the call's first message, so not the submit's
 * refusal) ends with its status and the request id in the {@code x-request-id} trailer, as gateway.proto promises:
 * the engine's own failure (INTERNAL) as well as one the client may retry (UNAVAILABLE).
 */
class GenerateStreamTrailerTest {

    /** The call's side the stream writes to: records what it was told. */
    private static final class Recorded extends ServerCallStreamObserver<GenerateResponse> {
        final List<Object> seen = new ArrayList<>();

        @Override
        public boolean isCancelled() {
            return false;
        }

        @Override
        public void setOnCancelHandler(Runnable onCancelHandler) {
        }

        @Override
        public void setCompression(String compression) {
        }

        @Override
        public boolean isReady() {
            return true;
        }

        @Override
        public void setOnReadyHandler(Runnable onReadyHandler) {
        }

        @Override
        public void request(int count) {
        }

        @Override
        public void setMessageCompression(boolean enable) {
        }

        @Override
        public void disableAutoInboundFlowControl() {
        }

        @Override
        public void onNext(GenerateResponse value) {
            seen.add(value);
        }

        @Override
        public void onError(Throwable t) {
            seen.add(t);
        }

        @Override
        public void onCompleted() {
            seen.add("completed");
        }
    }

    private static StatusRuntimeException endedWith(Throwable failure) {
        Recorded out = new Recorded();
        GenerateStream stream = new GenerateStream(out, CallReset.current(), null, new int[] {1, 5, 9}, false,
                "req-7", 1 << 20);
        stream.onError(failure, "");
        assertThat(out.seen).singleElement().isInstanceOf(StatusRuntimeException.class);
        return (StatusRuntimeException) out.seen.getFirst();
    }

    @Test
    void engineFailureBeforeTheFirstToken_endsInternal_withTheRequestIdTrailer() {
        StatusRuntimeException e = endedWith(new NullPointerException("a bug in a step"));
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INTERNAL);
        assertThat(e.getTrailers().get(GatewayStatus.REQUEST_ID)).isEqualTo("req-7");
    }

    @Test
    void promptOutgrewThePoolBeforeTheFirstToken_endsUnavailable_withTheWaitAndTheRequestIdTrailer() {
        String message = "the prompt's 151 tokens do not fit ...; retry after 5 s"; // as GenerationService says it
        StatusRuntimeException e = endedWith(new OffloadFailedException(message, 5));
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(e.getStatus().getDescription()).as("the wait once, not \"retry (retry after 5 s)\"")
                .isEqualTo(message);
        assertThat(e.getTrailers().get(GatewayStatus.REQUEST_ID)).isEqualTo("req-7");
    }
}
