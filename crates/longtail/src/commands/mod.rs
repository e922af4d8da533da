pub mod eval;
pub mod eval_rec;
pub mod eval_rec_interest;
pub mod model;
pub mod prepare;
pub mod recommend;
pub mod train;
pub mod train_interest;
