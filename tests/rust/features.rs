//! The feature spec: how images are framed (geometry of the crop modes), what pooling produces,
//! that the spec travels in model and project files (and version-1 files still read), and that a
//! head or embeddings are refused under another spec.

mod common;

use std::sync::OnceLock;

use burn::tensor::Device;
use common::*;
use headtune::backbone::{Backbone, BackboneKind, Embedding, StagePool};
use headtune::features::{FeatureSpec, Pooling};
use headtune::head::{DenseWeights, HeadKind, HeadWeights};
use headtune::predict::{predict_image, Classifier};
use headtune::preprocess::{self, Crop, CropBox, View};
use headtune::project::{self, Model, Project};
use headtune::store::{AugmentConfig, Store};
use headtune::thumbnail::{Preview, ThumbnailSizes};
use headtune::Error;

fn lite0() -> &'static Backbone {
    static B: OnceLock<Backbone> = OnceLock::new();
    B.get_or_init(|| Backbone::bundled_cpu().expect("bundled weights"))
}

fn spec(backbone: BackboneKind, size: Option<usize>, crop: Crop, pooling: Pooling) -> FeatureSpec {
    FeatureSpec::new(backbone, size, crop, pooling).expect("valid spec")
}

/// A linear head for `spec` with deterministic weights.
fn classifier(spec: FeatureSpec, classes: &[&str]) -> Classifier {
    let (d_in, d_out) = (spec.dim(), classes.len());
    let output = DenseWeights {
        d_in,
        d_out,
        weight: (0..d_in * d_out).map(|i| (i as f32 * 0.37).sin() * 0.01).collect(),
        bias: vec![0.0; d_out],
    };
    Classifier::new(spec, classes.iter().map(|c| c.to_string()).collect(), HeadWeights { kind: HeadKind::Linear, hidden: None, output })
        .expect("classifier")
}

/// A 200×100 image: left half red, right half blue.
fn halves() -> headtune::image::Rgb {
    image::RgbImage::from_fn(200, 100, |x, _| if x < 100 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) })
}

#[test]
fn crop_modes_frame_the_image_as_documented() {
    // centre: side floor(224/256 · 100) = 87, offset ((200 − 87 + 1) / 2, (100 − 87 + 1) / 2)
    let v = View::eval(200, 100, Crop::Center, 224);
    assert_eq!(v.crop, CropBox { x: 57.0, y: 7.0, width: 87.0, height: 87.0 });
    // at 240 the fraction is 240/272 (the TF EfficientNet rule S / (S + 32))
    assert_eq!(View::eval(200, 100, Crop::Center, 240).crop.width, 88.0);
    let full = View::eval(200, 100, Crop::Full, 224);
    assert_eq!((full.crop, full.letterbox), (CropBox::whole(200, 100), false));
    assert_eq!(full.placement(224), (0, 0, 224, 224));
    let pad = View::eval(200, 100, Crop::Pad, 224);
    assert_eq!((pad.crop, pad.letterbox), (CropBox::whole(200, 100), true));
    assert_eq!(pad.placement(224), (0, 56, 224, 112), "landscape: bars above and below");
    assert_eq!(View::eval(100, 200, Crop::Pad, 224).placement(224), (56, 0, 112, 224), "portrait: bars left and right");
    // What the whole input covers, in source pixels: the image plus its bars.
    assert_eq!(pad.input_region(224), CropBox { x: 0.0, y: -50.0, width: 200.0, height: 200.0 });
    assert_eq!(full.input_region(224), CropBox::whole(200, 100));
    assert_eq!(v.input_region(224), v.crop);
}

#[test]
fn rendered_inputs_show_what_each_mode_promises() {
    let img = halves();
    let red = image::Rgb([255u8, 0, 0]);
    let blue = image::Rgb([0u8, 0, 255]);
    // full: the whole image stretched: left half red, right half blue, no bars.
    let full = preprocess::render(&img, &View::eval(200, 100, Crop::Full, 224), 224).expect("render");
    assert_eq!((full.width(), full.height()), (224, 224));
    assert_eq!((*full.get_pixel(10, 0), *full.get_pixel(10, 223)), (red, red));
    assert_eq!((*full.get_pixel(213, 0), *full.get_pixel(213, 223)), (blue, blue));
    // pad: content in rows 56..168, grey bars (127 → 0 after normalisation) above and below.
    let pad = preprocess::render(&img, &View::eval(200, 100, Crop::Pad, 224), 224).expect("render");
    assert_eq!(*pad.get_pixel(10, 20), image::Rgb([127, 127, 127]));
    assert_eq!(*pad.get_pixel(10, 200), image::Rgb([127, 127, 127]));
    assert_eq!((*pad.get_pixel(10, 60), *pad.get_pixel(213, 160)), (red, blue));
    let x = preprocess::normalise(&pad);
    assert_eq!(x[20 * 224 + 10], 0.0, "bars normalise to 0");
    // centre: the middle 87 × 87 of the image, which straddles both halves.
    let centre = preprocess::render(&img, &View::eval(200, 100, Crop::Center, 224), 224).expect("render");
    assert_eq!((*centre.get_pixel(5, 100), *centre.get_pixel(218, 100)), (red, blue));
    // Other input sizes.
    let big = preprocess::preprocess_eval(&img, Crop::Pad, 300).expect("preprocess");
    assert_eq!(big.len(), 3 * 300 * 300);
}

#[test]
fn augmented_views_keep_the_framing_inside_the_evaluation_box() {
    let augment = AugmentConfig { views: 20, seed: 3, ..AugmentConfig::default() };
    let wide = image::RgbImage::from_fn(300, 100, |x, y| image::Rgb([(x % 256) as u8, (y * 2) as u8, 7]));
    for crop in Crop::ALL {
        let s = spec(BackboneKind::Lite0, None, crop, Pooling::Avg);
        let views = augment.views_for(&s, &wide, 7);
        let eval = views[0];
        assert_eq!(eval, s.eval_view(&wide));
        for v in &views[1..] {
            let (b, e) = (v.crop, eval.crop);
            assert!(b.x >= e.x - 1e-9 && b.y >= e.y - 1e-9, "{crop}: {b:?} inside {e:?}");
            assert!(b.x + b.width <= e.x + e.width + 1e-9 && b.y + b.height <= e.y + e.height + 1e-9, "{crop}: {b:?} inside {e:?}");
            assert!((b.width / b.height - e.width / e.height).abs() < 1e-9, "{crop}: same shape");
            assert!(b.width * b.height >= 0.6 * e.width * e.height - 1e-6, "{crop}: area ≥ min_area");
            assert_eq!(v.letterbox, eval.letterbox);
            preprocess::preprocess(&wide, v, 224).map(|_| ()).unwrap_or_else(|e| panic!("{crop}: {e}"));
        }
    }
}

#[test]
fn pooling_widths_and_normalisation() {
    let dims = |b, p| spec(b, None, Crop::Center, p).dim();
    assert_eq!(dims(BackboneKind::Lite0, Pooling::Avg), 1280);
    assert_eq!(dims(BackboneKind::Lite0, Pooling::Avgmax), 2560);
    assert_eq!(dims(BackboneKind::Lite0, Pooling::Multi), 1280 + 80 + 112 + 192 + 320);
    assert_eq!(dims(BackboneKind::Lite2, Pooling::Multi), 1280 + 88 + 120 + 208 + 352);
    let x = npy("chelsea.input.npy");
    for pooling in Pooling::ALL {
        let s = spec(BackboneKind::Lite0, None, Crop::Center, pooling);
        let e = pollster::block_on(s.embed_inputs(lite0(), &[&x])).expect("embed").remove(0);
        assert_eq!(e.len(), s.dim(), "{pooling}");
        if pooling != Pooling::Avg {
            // Every block has norm √width: no block dominates by scale.
            let head: f32 = e[..1280].iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((head - 1280f32.sqrt()).abs() < 1e-2, "{pooling}: head block norm {head}");
        } else {
            assert!(cosine(&e, &npy("chelsea.pooled.npy")) > 0.999);
        }
    }
}

#[test]
fn head_gradient_is_the_chain_rule_through_the_normalisation() {
    let s = spec(BackboneKind::Lite0, None, Crop::Center, Pooling::Multi);
    let p = Embedding {
        pooled: (0..1280).map(|i| ((i % 13) as f32 * 0.1).max(0.05)).collect(),
        map: None,
        map_side: 0,
        stages: [16, 24, 40, 80, 112, 192, 320].iter().map(|&w| StagePool { avg: vec![0.5; w], max: vec![1.0; w] }).collect(),
        head_max: None,
    };
    // loss = w · embedding; compare ∂loss/∂avg with central differences.
    let w: Vec<f32> = (0..s.dim()).map(|i| ((i * 31 % 17) as f32 - 8.0) * 0.01).collect();
    let loss = |p: &Embedding| s.combine(p).iter().zip(&w).map(|(a, b)| a * b).sum::<f32>();
    let g = s.head_gradient(&p, &w);
    for i in [0usize, 7, 500, 1279] {
        let h = 1e-2;
        let (mut up, mut down) = (p.clone(), p.clone());
        up.pooled[i] += h;
        down.pooled[i] -= h;
        let numeric = (loss(&up) - loss(&down)) / (2.0 * h);
        assert!((numeric - g[i]).abs() < 2e-3 * (1.0 + numeric.abs()), "∂/∂avg[{i}]: analytic {} vs numeric {numeric}", g[i]);
    }
}

#[test]
fn spec_validation_and_names() {
    assert!(FeatureSpec::new(BackboneKind::Lite0, Some(50), Crop::Full, Pooling::Avg).unwrap_err().to_string().contains("96 to 512"));
    assert_eq!(spec(BackboneKind::Lite2, None, Crop::Pad, Pooling::Avg).input_size(), 260, "the backbone's own size by default");
    assert!("lite9".parse::<BackboneKind>().unwrap_err().to_string().contains("\"lite0\", \"lite1\", \"lite2\""));
    assert!("middle".parse::<Crop>().unwrap_err().to_string().contains("\"center\", \"full\" or \"pad\""));
    assert!("sum".parse::<Pooling>().is_err());
    // The file form: full backbone id, camelCase, checked on the way in.
    let s = spec(BackboneKind::Lite1, Some(288), Crop::Full, Pooling::Multi);
    let json = serde_json::to_value(s).expect("json");
    assert_eq!(json, serde_json::json!({"backbone": "efficientnet-lite1/imagenet/tf-same/v1", "inputSize": 288, "crop": "full", "pooling": "multi"}));
    assert_eq!(serde_json::from_value::<FeatureSpec>(json).expect("back"), s);
    for bad in [
        serde_json::json!({"backbone": "resnet", "inputSize": 224, "crop": "full", "pooling": "avg"}),
        serde_json::json!({"backbone": "lite0", "inputSize": 9999, "crop": "full", "pooling": "avg"}),
        serde_json::json!({"backbone": "lite0", "inputSize": 224, "crop": "zoom", "pooling": "avg"}),
    ] {
        assert!(serde_json::from_value::<FeatureSpec>(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn spec_round_trips_in_model_and_project_files() {
    for s in [
        FeatureSpec::v1(),
        spec(BackboneKind::Lite1, Some(288), Crop::Full, Pooling::Multi),
        spec(BackboneKind::Lite2, None, Crop::Pad, Pooling::Avgmax),
    ] {
        let model = Model { classifier: classifier(s, &["a", "b"]), training: None, augment: None, metrics: None };
        let bytes = model.to_bytes().expect("writes");
        let back = Model::from_bytes(&bytes).expect("model parses");
        assert_eq!(back, model);
        assert_eq!(back.classifier.spec, s);
        assert_eq!(project::file_features(&bytes).expect("peek"), (false, s));

        let mut store = Store::new(s);
        for i in 0..3 {
            store.add(["a", "b"][i % 2], &format!("{i}.png"), vec![vec![i as f32 * 0.1; s.dim()]; 2]).expect("add");
        }
        let p = Project { store, augment: AugmentConfig::default(), training: None, model: Some(model), extra: serde_json::Value::Null };
        let bytes = p.to_bytes().expect("writes");
        let back = Project::from_bytes(&bytes).expect("project parses");
        assert_eq!(back, p);
        assert_eq!(back.store.spec(), &s);
        assert_eq!(project::file_features(&bytes).expect("peek"), (true, s));
    }
}

/// A version-1 file laid out by hand (the documented format: magic, version, kind, reserved,
/// metadata, f32 blob, CRC-32).
fn v1_file(kind: u8, meta: &serde_json::Value, blob: &[f32]) -> Vec<u8> {
    let meta = serde_json::to_vec(meta).expect("json");
    let mut out = b"HEADTUNE".to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&[kind, 0]);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    blob.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn version_1_files_still_read_as_lite0_224_center_avg() {
    // A model written by headtune before the spec existed (tests/fixtures/v1/, made by the
    // version-1 `headtune train`), and its predictions then.
    let bytes = std::fs::read(fixture("v1/model.headtune")).expect("fixture");
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1);
    let model = Model::from_bytes(&bytes).expect("a version-1 model reads");
    assert_eq!(model.classifier.spec, FeatureSpec::v1());
    assert_eq!(project::file_features(&bytes).expect("peek"), (false, FeatureSpec::v1()));
    let then: Vec<serde_json::Value> = std::fs::read_to_string(fixture("v1/predictions.jsonl"))
        .expect("fixture")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for line in then {
        let file = line["file"].as_str().expect("file");
        let path = if file == "chelsea.png" { fixture(file) } else { fixture(&format!("v1/{file}")) };
        let img = headtune::image::decode(&std::fs::read(path).expect("image")).expect("decode");
        let now = pollster::block_on(predict_image(lite0(), &model.classifier, &img, 2, false, false)).expect("predict");
        let p_then = line["top"][0]["probability"].as_f64().expect("p") as f32;
        assert_eq!(now.top[0].label, line["top"][0]["label"].as_str().expect("label"));
        // Same features (the bias-corrected compact weights move embeddings by < 0.001 cosine).
        assert!((now.top[0].probability - p_then).abs() < 0.01, "{file}: {} now, {p_then} then", now.top[0].probability);
    }
    // Written back, it becomes version 2 with the spec spelt out.
    let again = model.to_bytes().expect("writes");
    assert_eq!(u16::from_le_bytes([again[8], again[9]]), 2);
    assert_eq!(Model::from_bytes(&again).expect("v2").classifier.spec, FeatureSpec::v1());

    // A version-1 project: two examples of one view, no model.
    let meta = serde_json::json!({
        "backbone": "efficientnet-lite0/imagenet/tf-same/v1",
        "classes": ["a", "b"],
        "examples": [{"id": 0, "class": 0, "name": "x.png", "views": 1}, {"id": 4, "class": 1, "name": "y.png", "views": 1}],
        "augment": AugmentConfig::default(),
        "training": null, "model": null, "extra": {"note": 1}
    });
    let blob: Vec<f32> = (0..2 * 1280).map(|i| i as f32 * 1e-3).collect();
    let p = Project::from_bytes(&v1_file(2, &meta, &blob)).expect("a version-1 project reads");
    assert_eq!(p.store.spec(), &FeatureSpec::v1());
    assert_eq!(p.store.counts(), vec![1, 1]);
    assert_eq!(p.store.examples()[1].views[0][0], blob[1280]);
    // A version-1 file naming a backbone this headtune does not know is refused, clearly.
    let mut foreign = meta.clone();
    foreign["backbone"] = "resnet50/imagenet".into();
    let err = Project::from_bytes(&v1_file(2, &foreign, &blob)).expect_err("unknown backbone");
    assert!(err.to_string().contains("does not know"), "{err}");
}

#[test]
fn a_head_or_embeddings_under_another_spec_are_refused() {
    let plain = FeatureSpec::v1();
    let multi = spec(BackboneKind::Lite0, None, Crop::Center, Pooling::Multi);
    // A 1280-input head cannot claim 1984-wide features.
    let head = classifier(plain, &["a", "b"]).head;
    let err = Classifier::new(multi, vec!["a".into(), "b".into()], head).expect_err("width mismatch");
    assert!(matches!(err, Error::ModelFile(_)) && err.to_string().contains("1984"), "{err}");
    // A Lite1 head on the Lite0 backbone: refused before anything is computed.
    let lite1 = classifier(spec(BackboneKind::Lite1, None, Crop::Center, Pooling::Avg), &["a", "b"]);
    let err = pollster::block_on(predict_image(lite0(), &lite1, &halves(), 1, false, false)).expect_err("other backbone");
    assert!(matches!(err, Error::Data(_)) && err.to_string().contains("lite1"), "{err}");
    // Embeddings of another width do not enter a store.
    let mut store = Store::new(multi);
    assert!(store.add("a", "x", vec![vec![0.0; 1280]]).unwrap_err().to_string().contains("1984"));
    // Same width, other framing: the spec says why.
    let full = spec(BackboneKind::Lite0, None, Crop::Full, Pooling::Avg);
    let err = full.check_same(&plain, "a head").expect_err("crop differs");
    assert!(err.to_string().contains("crop center") && err.to_string().contains("crop full"), "{err}");
    // A project whose model was trained on other features than its embeddings is refused.
    let store = Store::new(full);
    let model = Model { classifier: classifier(plain, &["a", "b"]), training: None, augment: None, metrics: None };
    let p = Project { store, augment: AugmentConfig::default(), training: None, model: Some(model), extra: serde_json::Value::Null };
    assert!(Project::from_bytes(&p.to_bytes().expect("writes")).unwrap_err().to_string().contains("other features"));
}

#[test]
fn heatmap_covers_what_the_model_saw() {
    let img = halves();
    for (crop, region) in [
        (Crop::Center, CropBox { x: 57.0, y: 7.0, width: 87.0, height: 87.0 }),
        (Crop::Full, CropBox::whole(200, 100)),
        (Crop::Pad, CropBox { x: 0.0, y: -50.0, width: 200.0, height: 200.0 }),
    ] {
        let clf = classifier(spec(BackboneKind::Lite0, None, crop, Pooling::Avg), &["a", "b"]);
        let out = pollster::block_on(predict_image(lite0(), &clf, &img, 2, true, false)).expect("predict");
        let h = out.heatmap.expect("heatmap");
        assert_eq!(h.crop, region, "{crop}");
        assert_eq!((h.width, h.height, h.data.len()), (56, 56, 56 * 56));
        // The embedding is the one the spec makes from the same input.
        let e = pollster::block_on(clf.spec.embed_image(lite0(), &img)).expect("embed");
        assert!(max_abs_diff(&e, &out.embedding) < 1e-5, "{crop}");
    }
    // At 260 px on multi-scale features: a 9×9 map, still a 56×56 grid in [0, 1].
    let s = spec(BackboneKind::Lite0, Some(260), Crop::Full, Pooling::Multi);
    assert_eq!(s.map_size(), 9);
    let out = pollster::block_on(predict_image(lite0(), &classifier(s, &["a", "b"]), &img, 1, true, false)).expect("predict");
    let h = out.heatmap.expect("heatmap");
    assert!(h.data.iter().all(|v| (0.0..=1.0).contains(v)) && h.data.iter().any(|&v| v > 0.0));
}

/// An input preview predicted `framed` gives the network the same input again: the example's
/// own embedding, a heatmap over the whole preview. Framed the model's way a second time it
/// would not be (a centre crop of a centre crop). A region smaller than the input (the 200×100
/// image) keeps its own resolution, resized up by the prediction as the model did: exactly for
/// a square region (the centre crop), within one more resize's rounding otherwise; a letterbox
/// stays the input square.
#[test]
fn framed_predictions_of_input_previews_see_what_the_model_saw() {
    let big = image::RgbImage::from_fn(448, 224, |x, y| image::Rgb([(x / 2) as u8, y as u8, if x < 224 { 255 } else { 0 }]));
    for (img, crop, side, exact) in [
        (&big, Crop::Center, 196, true),
        (&big, Crop::Full, 224, true),
        (&big, Crop::Pad, 224, true),
        (&halves(), Crop::Center, 87, true),
        (&halves(), Crop::Full, 200, false),
        (&halves(), Crop::Pad, 224, true),
    ] {
        let what = format!("{}×{} {crop}", img.width(), img.height());
        let s = spec(BackboneKind::Lite0, None, crop, Pooling::Avg);
        let (views, seen) = pollster::block_on(headtune::store::embed_views_seen(lite0(), &s, img, &AugmentConfig::default(), 7)).expect("embed");
        let plain = pollster::block_on(headtune::store::embed_views(lite0(), &s, img, &AugmentConfig::default(), 7)).expect("embed");
        assert!(max_abs_diff(&views[0], &plain[0]) < 1e-6, "{what}: the same embedding with or without the pixels");
        let sizes = ThumbnailSizes { thumb: 112, preview: Preview::Input };
        let jpeg = sizes.make(img, Some(&seen)).expect("thumbnails").preview;
        let preview = image::load_from_memory(&jpeg).expect("a JPEG").to_rgb8();
        assert_eq!(preview.dimensions(), (side, side), "{what}");
        // The preview's pixels before JPEG: the seen square, or the region at its own size.
        let pixels = if side == 224 { seen.pixels.clone() } else { preprocess::render(img, &seen.view, side as usize).expect("renders") };
        let clf = classifier(s, &["a", "b"]);
        let out = pollster::block_on(predict_image(lite0(), &clf, &pixels, 2, true, true)).expect("predict");
        if exact {
            assert!(max_abs_diff(&views[0], &out.embedding) < 1e-5, "{what}: the framed preview embeds as the example");
        } else {
            assert!(cosine(&views[0], &out.embedding) > 0.999, "{what}: cosine {}", cosine(&views[0], &out.embedding));
        }
        assert_eq!(out.heatmap.expect("heatmap").crop, CropBox::whole(side, side), "{what}");
        let again = pollster::block_on(predict_image(lite0(), &clf, &pixels, 2, false, false)).expect("predict");
        if crop == Crop::Center {
            assert!(max_abs_diff(&views[0], &again.embedding) > 1e-3, "{what}: cropping the crop again changes the input");
        }
    }
}

#[test]
fn lite1_and_lite2_embed_at_their_own_size() {
    for kind in [BackboneKind::Lite1, BackboneKind::Lite2] {
        let backbone = Backbone::load(kind.bundled_weights(), Device::flex()).expect("load");
        let s = spec(kind, None, Crop::Full, Pooling::Avg);
        let e = pollster::block_on(s.embed_image(&backbone, &halves())).expect("embed");
        assert_eq!(e.len(), 1280);
        // The Lite0 spec refuses this backbone.
        let err = pollster::block_on(FeatureSpec::v1().embed_image(&backbone, &halves())).expect_err("other backbone");
        assert!(err.to_string().contains(kind.name()), "{err}");
    }
}

/// `auto` frames a grey-scale image whole and a colour one by the centre crop, decided from the
/// pixels: grey images saved as colour JPEGs (chroma noise) stay grey; a few coloured pixels
/// (an annotation) do not make a scan a photo, a stained slide is colour.
#[test]
fn auto_crop_is_full_for_grey_images_and_center_for_colour_ones() {
    use headtune::preprocess::is_greyscale;
    let grey = image::RgbImage::from_fn(320, 240, |x, y| {
        let v = ((x * 7 + y * 3) % 256) as u8;
        // ±5 levels of channel noise, as a JPEG of a grey scan has.
        image::Rgb([v, v.saturating_add(((x + y) % 6) as u8), v.saturating_sub((x % 5) as u8)])
    });
    let mut annotated = grey.clone();
    for x in 0..30 {
        annotated.put_pixel(x, 0, image::Rgb([255, 0, 0]));
    }
    let stained = image::RgbImage::from_fn(320, 240, |x, y| image::Rgb([200, ((x + y) % 120) as u8, 180]));
    let photo = tests_photo();
    assert!(is_greyscale(&grey) && is_greyscale(&annotated));
    assert!(!is_greyscale(&stained) && !is_greyscale(&photo));
    assert!(is_greyscale(&image::RgbImage::new(0, 0)), "an empty image has no colour");
    for (img, expect) in [(&grey, Crop::Full), (&annotated, Crop::Full), (&stained, Crop::Center), (&photo, Crop::Center)] {
        assert_eq!(Crop::Auto.resolve(img), expect);
        assert_eq!(Crop::Pad.resolve(img), Crop::Pad, "explicit modes stay");
        let auto = spec(BackboneKind::Lite0, None, Crop::Auto, Pooling::Avg);
        let fixed = spec(BackboneKind::Lite0, None, expect, Pooling::Avg);
        assert_eq!(auto.eval_view(img), fixed.eval_view(img));
        assert_eq!(
            preprocess::preprocess_eval(img, Crop::Auto, 224).expect("auto"),
            preprocess::preprocess_eval(img, expect, 224).expect("fixed")
        );
    }
    assert_eq!(headtune::features::FeatureSpec::default().crop(), Crop::Auto, "the default");
    // Per dataset: the majority of a sample decides, for every image of it.
    let auto = headtune::features::FeatureSpec::default();
    let (s, grey_count, n) = auto.resolve_auto([&grey, &annotated, &photo]);
    assert_eq!((s.crop(), grey_count, n), (Crop::Full, 2, 3));
    assert_eq!(s.eval_view(&photo), spec(BackboneKind::Lite0, None, Crop::Full, Pooling::Avg).eval_view(&photo), "the photo of a grey dataset is framed whole too");
    assert_eq!(auto.resolve_auto([&grey, &stained, &photo]).0.crop(), Crop::Center);
    assert_eq!(auto.resolve_auto([]).0.crop(), Crop::Center, "nothing to judge: the weights' own convention");
    let pad = auto.with_crop(Crop::Pad);
    assert_eq!(pad.resolve_auto([&grey]).0, pad, "a concrete crop stays");
    assert_eq!("auto".parse::<Crop>().expect("parses"), Crop::Auto);
}

fn tests_photo() -> image::RgbImage {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/chelsea.png")).expect("chelsea.png");
    headtune::image::decode(&bytes).expect("decodes")
}
