package io.moemesh.gateway.grpc;

import io.grpc.BindableService;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.ModelInfoResponse;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.proto.gateway.v1.TokenizeResponse;
import io.moemesh.service.grpc.CallReset;
import io.moemesh.service.grpc.RequestParsingGuard;
import java.time.Duration;
import java.util.Optional;
import java.util.UUID;

/**
 * The public gRPC API (moemesh.gateway.v1): a thin adapter over the engine loop. A Generate or Tokenize call is charged
 * to its tenant's rate when it starts, before its message is read ({@link TenantRateInterceptor}). Its requests are
 * parsed by {@link RequestParsingGuard}, which also admits Generate and Tokenize messages by size through the
 * {@link IntakeLimiter} shared with the HTTP API (RESOURCE_EXHAUSTED when too many large ones are in intake), and refuses a
 * call that does not send exactly one request message (INVALID_ARGUMENT). grpc-java hands a call's message over only at
 * its half-close, holding its bytes until then: a call (Generate, Tokenize, ModelInfo) whose half-close has not come
 * {@code requestReadTimeout} after its start is ended by the guard (DEADLINE_EXCEEDED naming
 * moemesh.gateway.admission.request-read-timeout, its stream reset), so a client that never ends its request cannot
 * hold them; and what all such calls hold at once is bounded by moemesh.gateway.admission.max-held-request-bytes (the
 * server's HeldRequestBytes: past it a call is closed RESOURCE_EXHAUSTED and reset).
 */
public final class GatewayGrpcService extends GatewayServiceGrpc.GatewayServiceImplBase {
    private final MoeModel model;
    private final Optional<ChatTemplate> chat;
    private final PromptBuilder prompts;
    private final PromptLimits limits;
    private final GenerationService service;
    private final IntakeLimiter intake;
    private final long maxStreamBacklogBytes;
    private final RequestParsingGuard.HalfCloseBound halfCloseBound;

    /**
     * @param maxStreamBacklogBytes serialized bytes of Generate messages a call may have waiting for a client that
     *                              does not read before its sequence is cancelled (see {@link GenerateStream})
     * @param requestReadTimeout    how long a call may take from its start to its half-close
     */
    public GatewayGrpcService(MoeModel model, Optional<ChatTemplate> chat, GenerationService service,
                              PromptLimits limits, IntakeLimiter intake, long maxStreamBacklogBytes,
                              Duration requestReadTimeout) {
        this.maxStreamBacklogBytes = maxStreamBacklogBytes;
        this.halfCloseBound = new RequestParsingGuard.HalfCloseBound(requestReadTimeout,
                "moemesh.gateway.admission.request-read-timeout");
        this.model = model;
        this.chat = chat;
        this.limits = limits;
        this.prompts = new PromptBuilder(model, chat, limits);
        this.service = service;
        this.intake = intake;
    }

    /** How long a call of this service may take from its start to its half-close (request-read-timeout). */
    public RequestParsingGuard.HalfCloseBound halfCloseBound() {
        return halfCloseBound;
    }

    /** This service with its requests parsed by the guard and large ones admitted by the intake limiter. */
    public BindableService guarded() {
        return () -> RequestParsingGuard.guard(bindService(), this::admit, halfCloseBound);
    }

    /**
     * Large Generate and Tokenize messages take an intake permit for their parsing and tokenization (their tenant's
     * rate was charged when the call started: {@link TenantRateInterceptor}).
     */
    private Runnable admit(MethodDescriptor<?, ?> method, int bytes) {
        String name = method.getFullMethodName();
        if (!name.equals(GatewayServiceGrpc.getGenerateMethod().getFullMethodName())
                && !name.equals(GatewayServiceGrpc.getTokenizeMethod().getFullMethodName())) {
            return () -> { };
        }
        try {
            return intake.admit(bytes)::close;
        } catch (RuntimeException e) {
            throw GatewayStatus.ofCall(e, "the request's admission").asRuntimeException();
        }
    }

    @Override
    public void generate(GenerateRequest request, StreamObserver<GenerateResponse> observer) {
        long arrival = ArrivalInterceptor.arrivalNanos();
        ServerCallStreamObserver<GenerateResponse> out = (ServerCallStreamObserver<GenerateResponse>) observer;
        String requestId = request.getRequestId().isEmpty() ? UUID.randomUUID().toString() : request.getRequestId();
        GenerationService.Handle handle;
        try {
            GenerationRequest r = prompts.request(request);
            ServingRequest serving = new ServingRequest(requestId, Tenants.current(), r,
                    request.getSampling().getStopList(), arrival);
            GenerateStream stream = new GenerateStream(out, CallReset.current(), model.tokenizer(), r.promptIds(),
                    r.trace(), requestId, maxStreamBacklogBytes);
            // The first message goes out before the sequence can produce tokens on the engine thread (and so
            // before it can complete: GenerationService relies on that to hand over its dispatch record).
            synchronized (out) {
                handle = service.submit(serving, stream);
                stream.attach(handle);
                out.onNext(GenerateResponse.newBuilder().setRequestId(requestId).setPromptTokens(r.promptIds().length)
                        .build());
            }
        } catch (RuntimeException e) {
            // Refused before the first message, which echoes the id: the trailers carry it instead.
            out.onError(GatewayStatus.ending(e, requestId));
            return;
        }
        // Client gone or deadline passed: the sequence is dropped at the next step boundary.
        out.setOnCancelHandler(handle::cancel);
    }

    @Override
    public void tokenize(TokenizeRequest request, StreamObserver<TokenizeResponse> out) {
        try {
            prompts.checkModel(request.getModel());
            TokenizeResponse.Builder b = TokenizeResponse.newBuilder();
            String text = switch (request.getInputCase()) {
                case TEXT -> request.getText();
                case CHAT -> {
                    String rendered = prompts.renderChat(request.getChat());
                    b.setRenderedPrompt(rendered);
                    yield rendered;
                }
                case INPUT_NOT_SET -> throw new IllegalArgumentException("the request has no input: set text or chat");
            };
            // Tokenize answers for texts a prompt could be: one that cannot fit is refused untokenized.
            limits.checkText(request.getInputCase() == TokenizeRequest.InputCase.TEXT ? "text" : "chat", text);
            int[] ids = prompts.tokenizeBos(model.tokenizer().encode(text), request);
            for (int id : ids) {
                b.addTokenIds(id);
                b.addTokens(model.tokenizer().token(id));
            }
            out.onNext(b.build());
            out.onCompleted();
        } catch (RuntimeException e) {
            out.onError(GatewayStatus.ofCall(e, "Tokenize").asRuntimeException());
        }
    }

    @Override
    public void modelInfo(ModelInfoRequest request, StreamObserver<ModelInfoResponse> out) {
        try {
            prompts.checkModel(request.getModel());
        } catch (RuntimeException e) {
            out.onError(GatewayStatus.ofCall(e, "ModelInfo").asRuntimeException());
            return;
        }
        ModelConfig c = model.config();
        ModelInfoResponse.Builder b = ModelInfoResponse.newBuilder().setModel(prompts.modelName())
                .setArchitecture(c.architecture().hfClass()).setNumLayers(c.numLayers()).setNumExperts(c.numExperts())
                .setTopK(c.topK()).setHiddenSize(c.hiddenSize()).setVocabSize(c.vocabSize())
                // the context this gateway serves (its KV cache may hold fewer positions than the model's), which
                // admission, the default max_tokens and FINISH_REASON_LENGTH use
                .setMaxPositionEmbeddings(limits.context()).addAllEosTokenIds(c.eosTokenIds())
                .setDtype(switch (c.dtype()) {
                    case "bfloat16" -> DType.DTYPE_BF16;
                    case "float16" -> DType.DTYPE_F16;
                    default -> DType.DTYPE_F32;
                })
                .setHasChatTemplate(chat.isPresent()).setNumSharedExperts(c.hasSharedExpert() ? 1 : 0);
        c.bosTokenId().ifPresent(b::setBosTokenId);
        out.onNext(b.build());
        out.onCompleted();
    }
}
