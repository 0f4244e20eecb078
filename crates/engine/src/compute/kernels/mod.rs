//! Kiln's own GPU kernels, reached from burn tensors through burn's backend-extension points:
//! each operation is a method of [`KilnOps`], implemented for burn's cubecl backend (every wgpu
//! device: Vulkan, DX12, Metal, lavapipe) and recorded lazily by burn's fusion like a built-in.
//! Tensors are NHWC (`[batch, height, width, channels]`); see [`conv`] for the kernels.
//!
//! burn's CPU backend (Flex) has none of these: the networks there run burn's own operations
//! (`nets::rrdbnet`, `nets::compact`), which are also the reference the kernels are tested against.

mod channels;
pub mod conv;

use burn::backend::{Backend, backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Device, Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;

use conv::{CmmaBlock, ConvBuffers, ConvGeometry, ConvKernel};

/// Which convolution kernel form an operation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelChoice {
    /// Tensor cores where the device and dtype allow, else the tiled kernel.
    #[default]
    Best,
    /// The register-tiled kernel (every device, every dtype).
    Tiled,
    /// The tensor-core kernel with this block shape (where it runs; else as `Best`).
    Cmma(CmmaBlock),
}

/// A convolution's fixed parameters: `out = act(conv(input) + bias) · scale (+ residual)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvOp {
    /// 3 or 1.
    pub kernel: usize,
    /// 1, or 2 to read the input through nearest ×2 upsampling.
    pub upsample: usize,
    pub scale: f32,
    pub choice: KernelChoice,
}

impl ConvOp {
    pub fn new(kernel: usize) -> Self {
        Self { kernel, upsample: 1, scale: 1.0, choice: KernelChoice::Best }
    }
}

/// A residual dense block (ESRGAN's RDB) as one operation: `convs` 3×3 convolutions, each
/// reading the input and every earlier output, each with its per-channel slopes (ESRGAN:
/// LeakyReLU 0.2, and 1 = none on the last), and `input + last · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseBlock {
    pub features: usize,
    pub growth: usize,
    pub convs: usize,
    pub scale: f32,
    pub choice: KernelChoice,
}

impl DenseBlock {
    /// Input channels of convolution `k` (0-based).
    pub fn in_channels(&self, k: usize) -> usize {
        self.features + self.growth * k
    }

    pub fn out_channels(&self, k: usize) -> usize {
        if k + 1 == self.convs { self.features } else { self.growth }
    }

    /// Channels of the workspace the convolutions share.
    pub fn workspace_channels(&self) -> usize {
        self.in_channels(self.convs - 1)
    }
}

fn conv_shape(input: &Shape, bias: &Shape, op: &ConvOp) -> Shape {
    Shape::new([input[0], input[1] * op.upsample, input[2] * op.upsample, bias[0]])
}

/// Kiln's operations on burn tensors.
#[backend_extension(Cube, Fusion)]
pub trait KilnOps: Backend {
    /// `input` `[n, h, w, c_in]`, `weight` `[k²·c_in, padded(c_out)]` (tap-major, from
    /// [`pack_weight`]), `bias` and `slope` `[c_out]` -> `[n, h·up, w·up, c_out]`.
    #[fusion(dtype = input, shape = conv_shape(input, bias, op))]
    fn conv_nhwc(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        op: ConvOp,
    ) -> FloatTensor<Self>;

    /// [`KilnOps::conv_nhwc`] plus `residual` (the output's shape), added after the scale.
    #[fusion(dtype = input, shape = conv_shape(input, bias, op))]
    fn conv_nhwc_residual(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        slope: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        op: ConvOp,
    ) -> FloatTensor<Self>;

    /// A dense block on `input` `[n, h, w, features]`; `weights`, `biases` and `slopes` are
    /// the block's convolutions one after another, flattened.
    #[fusion(dtype = input, shape = input)]
    fn dense_block(
        input: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        biases: FloatTensor<Self>,
        slopes: FloatTensor<Self>,
        block: DenseBlock,
    ) -> FloatTensor<Self>;
}

fn dims4(tensor: &CubeTensor) -> [usize; 4] {
    let shape = tensor.meta.shape();
    assert_eq!(shape.num_dims(), 4, "NHWC tensors have four dimensions");
    [shape[0], shape[1], shape[2], shape[3]]
}

fn len(tensor: &CubeTensor) -> usize {
    tensor.meta.shape().num_elements()
}

fn kernel_for(tensor: &CubeTensor, choice: KernelChoice) -> ConvKernel {
    match choice {
        KernelChoice::Best => ConvKernel::best(&tensor.client, tensor.dtype == DType::F16),
        KernelChoice::Tiled => ConvKernel::Tiled,
        KernelChoice::Cmma(block) => match ConvKernel::best(&tensor.client, tensor.dtype == DType::F16) {
            ConvKernel::Cmma(_) => ConvKernel::Cmma(block),
            other => other,
        },
    }
}

fn run(tensor: &CubeTensor, kernel: ConvKernel, geometry: &ConvGeometry, buffers: ConvBuffers, scale: f32) {
    match tensor.dtype {
        DType::F32 => conv::launch::<f32>(&tensor.client, kernel, geometry, buffers, scale),
        DType::F16 => conv::launch::<half::f16>(&tensor.client, kernel, geometry, buffers, scale),
        other => panic!("Kiln's convolution runs in f32 or f16, not {other:?}"),
    }
}

fn conv_cube(
    input: CubeTensor,
    weight: CubeTensor,
    bias: CubeTensor,
    slope: CubeTensor,
    residual: Option<CubeTensor>,
    op: ConvOp,
) -> CubeTensor {
    let input = into_contiguous(input);
    let weight = into_contiguous(weight);
    let [batch, height, width, in_channels] = dims4(&input);
    let out_channels = bias.meta.shape()[0];
    assert_eq!(weight.meta.shape()[0], op.kernel * op.kernel * in_channels, "weight rows are k²·c_in");
    assert_eq!(weight.meta.shape()[1], conv::padded(out_channels), "weight rows are padded to 8 outputs");
    let geometry = ConvGeometry {
        batch,
        in_height: height,
        in_width: width,
        in_channels,
        in_stride: in_channels,
        out_channels,
        out_stride: out_channels,
        out_offset: 0,
        upsample: op.upsample,
        kernel: op.kernel,
    };
    let out = empty_device_dtype(
        input.client.clone(),
        input.device.clone(),
        Shape::new([batch, geometry.out_height(), geometry.out_width(), out_channels]),
        input.dtype,
    );
    let residual = residual.map(|r| {
        let r = into_contiguous(r);
        assert_eq!(r.meta.shape(), out.meta.shape(), "the residual has the output's shape");
        (r.handle.clone(), len(&r), out_channels)
    });
    let buffers = ConvBuffers {
        input: input.handle.clone(),
        input_len: len(&input),
        weight: weight.handle.clone(),
        weight_len: len(&weight),
        weight_offset: 0,
        bias: bias.handle.clone(),
        slope: slope.handle.clone(),
        vector_len: out_channels,
        bias_offset: 0,
        residual,
        output: out.handle.clone(),
        output_len: len(&out),
    };
    run(&input, kernel_for(&input, op.choice), &geometry, buffers, op.scale);
    out
}

impl KilnOps for CubeBackend {
    fn conv_nhwc(input: CubeTensor, weight: CubeTensor, bias: CubeTensor, slope: CubeTensor, op: ConvOp) -> CubeTensor {
        conv_cube(input, weight, bias, slope, None, op)
    }

    fn conv_nhwc_residual(
        input: CubeTensor,
        weight: CubeTensor,
        bias: CubeTensor,
        slope: CubeTensor,
        residual: CubeTensor,
        op: ConvOp,
    ) -> CubeTensor {
        conv_cube(input, weight, bias, slope, Some(residual), op)
    }

    fn dense_block(
        input: CubeTensor,
        weights: CubeTensor,
        biases: CubeTensor,
        slopes: CubeTensor,
        block: DenseBlock,
    ) -> CubeTensor {
        let input = into_contiguous(input);
        let weights = into_contiguous(weights);
        let [batch, height, width, features] = dims4(&input);
        assert_eq!(features, block.features, "the block's input has its feature count");
        let channels = block.workspace_channels();
        let client = input.client.clone();
        // The workspace holds the input and every growth output side by side, so each
        // convolution reads a channel prefix of it: the dense block's `cat`, never materialised.
        let workspace = empty_device_dtype(
            client.clone(),
            input.device.clone(),
            Shape::new([batch, height, width, channels]),
            input.dtype,
        );
        let out = empty_device_dtype(client.clone(), input.device.clone(), input.meta.shape().clone(), input.dtype);
        let kernel = kernel_for(&input, block.choice);
        channels::copy_into(&input, &workspace, channels);
        let (mut weight_offset, mut bias_offset) = (0, 0);
        for k in 0..block.convs {
            let last = k + 1 == block.convs;
            let (in_channels, out_channels) = (block.in_channels(k), block.out_channels(k));
            let geometry = ConvGeometry {
                batch,
                in_height: height,
                in_width: width,
                in_channels,
                in_stride: channels,
                out_channels,
                out_stride: if last { features } else { channels },
                out_offset: if last { 0 } else { in_channels },
                upsample: 1,
                kernel: 3,
            };
            let buffers = ConvBuffers {
                input: workspace.handle.clone(),
                input_len: len(&workspace),
                weight: weights.handle.clone(),
                weight_len: len(&weights),
                weight_offset,
                bias: biases.handle.clone(),
                slope: slopes.handle.clone(),
                vector_len: len(&biases),
                bias_offset,
                residual: last.then(|| (input.handle.clone(), len(&input), features)),
                output: if last { out.handle.clone() } else { workspace.handle.clone() },
                output_len: if last { len(&out) } else { len(&workspace) },
            };
            run(&input, kernel, &geometry, buffers, if last { block.scale } else { 1.0 });
            weight_offset += 9 * in_channels * conv::padded(out_channels);
            bias_offset += out_channels;
        }
        out
    }
}

/// Whether `device` runs Kiln's kernels (a cubecl device; burn's CPU backend does not).
pub fn has_kernels(device: &Device) -> bool {
    matches!(device.as_dispatch(), burn::backend::DispatchDevice::Cube(_))
}

/// [`KilnOps::conv_nhwc`] on tensors.
pub fn conv(input: Tensor<4>, weight: Tensor<2>, bias: Tensor<1>, slope: Tensor<1>, op: ConvOp) -> Tensor<4> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(<Dispatch as KilnOps>::conv_nhwc(
        input.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        slope.into_dispatch(),
        op,
    ))
}

/// [`KilnOps::conv_nhwc_residual`] on tensors.
pub fn conv_residual(
    input: Tensor<4>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    slope: Tensor<1>,
    residual: Tensor<4>,
    op: ConvOp,
) -> Tensor<4> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(<Dispatch as KilnOps>::conv_nhwc_residual(
        input.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        slope.into_dispatch(),
        residual.into_dispatch(),
        op,
    ))
}

/// [`KilnOps::dense_block`] on tensors.
pub fn dense_block(
    input: Tensor<4>,
    weights: Tensor<1>,
    biases: Tensor<1>,
    slopes: Tensor<1>,
    block: DenseBlock,
) -> Tensor<4> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(<Dispatch as KilnOps>::dense_block(
        input.into_dispatch(),
        weights.into_dispatch(),
        biases.into_dispatch(),
        slopes.into_dispatch(),
        block,
    ))
}

/// `[out, in, k, k]` (PyTorch) -> `[k²·in, padded(out)]`, the layout the convolution reads
/// (zero columns past `out`).
pub fn pack_weight(weight: Tensor<4>) -> Tensor<2> {
    let [out, input, kh, kw] = weight.dims();
    let rows = kh * kw * input;
    let packed = weight.permute([2, 3, 1, 0]).reshape([rows, out]);
    let columns = conv::padded(out);
    if columns == out {
        return packed;
    }
    let zeros = Tensor::<2>::zeros([rows, columns - out], &packed.device()).cast(packed.dtype());
    Tensor::cat(vec![packed, zeros], 1)
}

#[cfg(test)]
pub(crate) mod tests;
