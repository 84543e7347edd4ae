package io.moemesh.cli.mesh;

import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.TraceInfo;
import java.time.Duration;
import java.util.Iterator;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.IntStream;

/** A plaintext gRPC client of the gateway's {@code moemesh.gateway.v1.GatewayService}. */
public final class GatewayClient implements AutoCloseable {
    // A traced reply of a large model (vocab logits, router top-k of a long prompt) exceeds gRPC's 4 MiB default.
    private static final int MAX_MESSAGE_BYTES = 256 << 20;

    private final String endpoint;
    private final ManagedChannel channel;
    private final Duration deadline;

    /** @param endpoint HOST:PORT (IPv6 hosts in brackets), no scheme */
    public GatewayClient(String endpoint) {
        this(endpoint, null);
    }

    /**
     * @param endpoint HOST:PORT (IPv6 hosts in brackets), no scheme
     * @param deadline of every call (DEADLINE_EXCEEDED after it); null = none
     */
    public GatewayClient(String endpoint, Duration deadline) {
        this(endpoint, deadline, null);
    }

    /**
     * @param apiKey sent as {@code authorization: Bearer KEY} on every call; null = none (auth off)
     */
    public GatewayClient(String endpoint, Duration deadline, String apiKey) {
        int colon = endpoint.lastIndexOf(':');
        if (colon <= 0 || !endpoint.substring(colon + 1).matches("\\d{1,5}")
                || Integer.parseInt(endpoint.substring(colon + 1)) > 65535 || endpoint.contains("/")) {
            throw new IllegalArgumentException("--endpoint must be HOST:PORT (no scheme), got \"" + endpoint + "\"");
        }
        String host = endpoint.substring(0, colon).replaceAll("^\\[(.*)]$", "$1");
        this.endpoint = endpoint;
        this.deadline = deadline;
        this.channel = Grpc.newChannelBuilderForAddress(host, Integer.parseInt(endpoint.substring(colon + 1)),
                InsecureChannelCredentials.create()).maxInboundMessageSize(MAX_MESSAGE_BYTES)
                .intercept(apiKey == null ? List.of() : List.of(bearer(apiKey))).build();
    }

    private static io.grpc.ClientInterceptor bearer(String key) {
        io.grpc.Metadata md = new io.grpc.Metadata();
        md.put(io.grpc.Metadata.Key.of("authorization", io.grpc.Metadata.ASCII_STRING_MARSHALLER), "Bearer " + key);
        return io.grpc.stub.MetadataUtils.newAttachHeadersInterceptor(md);
    }

    public String endpoint() {
        return endpoint;
    }

    /**
     * Runs one Generate call to its end, handing every message to {@code onMessage} as it arrives.
     *
     * @throws io.grpc.StatusRuntimeException the call's error status, also when the gateway ends the stream with
     *                                        FINISH_REASON_ERROR, or with FINISH_REASON_CANCELLED and an error (a
     *                                        shutting-down gateway's drain ended: UNAVAILABLE); its {@code error}
     *                                        becomes the status
     */
    public Generation generate(GenerateRequest request, Consumer<GenerateResponse> onMessage) {
        // A cancellable context, so that a caller that stops reading (an exception in onMessage) also stops
        // the generation on the gateway instead of leaving it running.
        Context.CancellableContext ctx = Context.current().withCancellation();
        try {
            return ctx.call(() -> run(request, onMessage));
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        } finally {
            ctx.cancel(null);
        }
    }

    private Generation run(GenerateRequest request, Consumer<GenerateResponse> onMessage) {
        GatewayServiceGrpc.GatewayServiceBlockingStub stub = GatewayServiceGrpc.newBlockingStub(channel);
        if (deadline != null) {
            stub = stub.withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
        }
        Iterator<GenerateResponse> it = stub.generate(request);
        String requestId = "";
        IntStream.Builder ids = IntStream.builder();
        StringBuilder text = new StringBuilder();
        GenerateResponse last = null;
        while (it.hasNext()) {
            GenerateResponse r = it.next();
            onMessage.accept(r);
            if (!r.getRequestId().isEmpty()) {
                requestId = r.getRequestId();
            }
            r.getTokenIdsList().forEach(ids::add);
            text.append(r.getText());
            last = r;
            if (r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
                break;
            }
        }
        int[] generated = ids.build().toArray();
        if (last == null || last.getFinishReason() == FinishReason.FINISH_REASON_UNSPECIFIED) {
            throw Status.INTERNAL.withDescription("the gateway ended the Generate stream without a final message")
                    .asRuntimeException();
        }
        if (last.getFinishReason() == FinishReason.FINISH_REASON_ERROR) {
            throw Status.fromCodeValue(last.getError().getCode())
                    .withDescription(last.getError().getMessage()).asRuntimeException();
        }
        // A shutting-down gateway whose drain grace ended stops the request with CANCELLED and the retryable
        // UNAVAILABLE: the text is cut off, so the call failed (as before any token, when the status ends the call).
        if (last.getFinishReason() == FinishReason.FINISH_REASON_CANCELLED && last.getError().getCode() != 0) {
            String why = last.getError().getMessage().isEmpty() ? "" : ": " + last.getError().getMessage();
            throw Status.fromCodeValue(last.getError().getCode())
                    .withDescription("the gateway cancelled the request while draining (shutting down) after "
                            + generated.length + " token(s); retry it" + why).asRuntimeException();
        }
        String reason = last.getFinishReason().name().substring("FINISH_REASON_".length()).toLowerCase(Locale.ROOT);
        return new Generation(requestId, generated, text.toString(), reason, last.getTrace());
    }

    @Override
    public void close() {
        channel.shutdownNow();
        try {
            channel.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
